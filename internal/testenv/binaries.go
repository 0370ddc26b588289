package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// binaries are the absolute paths of what Start runs.
type binaries struct {
	etcd, apiserver, controllerManager, scheduler, kwok, prometheus string
	istioCRDs, kwokStages                                           string // data files in the cache
}

// CacheDir is where hack/tools.sh caches the control plane, by the same rule
// as the script: $MESHCANARY_CACHE, else $XDG_CACHE_HOME/meshcanary, else
// $HOME/.cache/meshcanary.
func CacheDir() (string, error) {
	if d := os.Getenv("MESHCANARY_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "meshcanary"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the tool cache: %w", err)
	}
	return filepath.Join(home, ".cache", "meshcanary"), nil
}

func findBinaries() (binaries, error) {
	cache, err := CacheDir()
	if err != nil {
		return binaries{}, fmt.Errorf("testenv: %w", err)
	}
	bin := filepath.Join(cache, "bin")
	b := binaries{
		etcd:              filepath.Join(bin, "etcd"),
		apiserver:         filepath.Join(bin, "kube-apiserver"),
		controllerManager: filepath.Join(bin, "kube-controller-manager"),
		scheduler:         filepath.Join(bin, "kube-scheduler"),
		kwok:              filepath.Join(bin, "kwok"),
		istioCRDs:         filepath.Join(cache, "istio-crds.yaml"),
		kwokStages:        filepath.Join(cache, "kwok-stages.yaml"),
	}
	var errs []error
	for _, p := range []string{b.etcd, b.apiserver, b.controllerManager, b.scheduler, b.kwok} {
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			errs = append(errs, fmt.Errorf("missing executable %s", p))
		}
	}
	for _, p := range []string{b.istioCRDs, b.kwokStages} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			errs = append(errs, fmt.Errorf("missing file %s", p))
		}
	}
	if p, err := exec.LookPath("prometheus"); err != nil {
		errs = append(errs, fmt.Errorf("prometheus is not on PATH: %w", err))
	} else {
		b.prometheus = p
	}
	if len(errs) > 0 {
		return binaries{}, fmt.Errorf("testenv: the local control plane is not installed; run `hack/tools.sh cluster` (the Makefile does this before tests): %w", errors.Join(errs...))
	}
	return b, nil
}
