package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const (
	watchDeadline = 10 * time.Second
	goodPolicies  = "policies:\n- name: payments\n  interval: 1m\n"
	newPolicies   = "policies:\n- name: payments\n  interval: 30s\n- name: checkout\n"
	badPolicies   = "policies:\n- name: payments\n  interval: 10ms\n  failureLimit: -1\n"
)

// writeAtomically replaces a file the way careful writers do, so that the
// watcher never sees it half written and each test sees one reload.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startWatcher runs a Watcher on path until the test ends and returns the
// store and the reload outcomes.
func startWatcher(t *testing.T, path string) (*Store, <-chan error) {
	t.Helper()
	store := NewStore()
	reloads := make(chan error, 64)
	w, err := NewWatcher(path, store, func(err error) {
		select {
		case reloads <- err:
		default:
			t.Error("too many reloads for the test to follow")
		}
	}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("NewWatcher: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after its context ended; want nil", err)
		}
	})
	return store, reloads
}

// waitFor polls until cond holds. Polling with a deadline, rather than
// sleeping a fixed time, keeps the test fast and robust on a busy machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(watchDeadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func nextReload(t *testing.T, reloads <-chan error) error {
	t.Helper()
	select {
	case err := <-reloads:
		return err
	case <-time.After(watchDeadline):
		t.Fatal("timed out waiting for a reload")
		return nil
	}
}

func intervalOf(s *Store, name string) time.Duration {
	p, ok := s.Get(name)
	if !ok {
		return 0
	}
	return p.Interval.Duration
}

func TestWatcher(t *testing.T) {
	t.Run("a rewritten file replaces the policies", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "policies.yaml")
		writeAtomically(t, path, goodPolicies)
		store, reloads := startWatcher(t, path)
		if got := intervalOf(store, "payments"); got != time.Minute {
			t.Fatalf("after start, payments interval = %v; want 1m0s", got)
		}

		writeAtomically(t, path, newPolicies)
		waitFor(t, "the store holds the new policies", func() bool {
			return intervalOf(store, "payments") == 30*time.Second
		})
		if _, ok := store.Get("checkout"); !ok {
			t.Error("the new checkout policy is missing")
		}
		if err := nextReload(t, reloads); err != nil {
			t.Errorf("onReload(%v); want nil for a good file", err)
		}
	})

	t.Run("a file written in place is picked up", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "policies.yaml")
		writeAtomically(t, path, goodPolicies)
		store, _ := startWatcher(t, path)
		if err := os.WriteFile(path, []byte(newPolicies), 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the store holds the new policies", func() bool {
			return intervalOf(store, "payments") == 30*time.Second
		})
	})

	t.Run("an invalid file keeps the last good policies and reports every problem", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "policies.yaml")
		writeAtomically(t, path, goodPolicies)
		store, reloads := startWatcher(t, path)

		writeAtomically(t, path, badPolicies)
		err := nextReload(t, reloads)
		var verr *ValidationError
		if !errors.As(err, &verr) {
			t.Fatalf("onReload(%v); want a *ValidationError", err)
		}
		for _, want := range []string{"policies[0].interval", "policies[0].failureLimit"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the reported error does not name %s: %v", want, err)
			}
		}
		if got := intervalOf(store, "payments"); got != time.Minute {
			t.Errorf("payments interval = %v after a bad file; want the last good 1m0s", got)
		}

		// The same bad content again is no news and must not be reported
		// twice; the next good file still loads.
		writeAtomically(t, path, badPolicies)
		writeAtomically(t, path, newPolicies)
		if err := nextReload(t, reloads); err != nil {
			t.Errorf("onReload(%v) after a good file; want nil", err)
		}
		if got := intervalOf(store, "payments"); got != 30*time.Second {
			t.Errorf("payments interval = %v; want 30s", got)
		}
	})

	t.Run("a ConfigMap-style symlink swap is picked up", func(t *testing.T) {
		dir := t.TempDir()
		// The kubelet's layout: data in a timestamped directory, "..data"
		// pointing at it, and the key a symlink through "..data".
		writeVersion := func(name, content string) {
			if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name, "policies.yaml"), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		writeVersion("..2026_11_23_06_00_00.000000001", goodPolicies)
		if err := os.Symlink("..2026_11_23_06_00_00.000000001", filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "policies.yaml")
		if err := os.Symlink(filepath.Join("..data", "policies.yaml"), path); err != nil {
			t.Fatal(err)
		}
		store, reloads := startWatcher(t, path)

		writeVersion("..2026_11_23_06_05_00.000000002", newPolicies)
		if err := os.Symlink("..2026_11_23_06_05_00.000000002", filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(dir, "..2026_11_23_06_00_00.000000001")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the store holds the swapped-in policies", func() bool {
			return intervalOf(store, "payments") == 30*time.Second
		})
		if err := nextReload(t, reloads); err != nil {
			t.Errorf("onReload(%v); want nil", err)
		}
	})
}

func TestNewWatcherRefusesWhatItCannotLoad(t *testing.T) {
	tests := []struct {
		name    string
		content string // empty: no file at all
		wantErr string
	}{
		{name: "an invalid file at start is an error listing its problems", content: badPolicies, wantErr: "policies[0].interval"},
		{name: "a missing file at start is an error", wantErr: "reading policy file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policies.yaml")
			if tt.content != "" {
				writeAtomically(t, path, tt.content)
			}
			store := NewStore()
			_, err := NewWatcher(path, store, nil, zerolog.Nop())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewWatcher error = %v; want one containing %q", err, tt.wantErr)
			}
			if names := store.Names(); len(names) != 1 {
				t.Errorf("a refused file must leave the store alone; names = %v", names)
			}
		})
	}
}
