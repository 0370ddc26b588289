package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// generationLabel marks each config written, so SetScrapeConfigs can tell from
// /api/v1/status/config that Prometheus runs the new one. External labels do
// not show up in local query results, so tests never see it.
const generationLabel = "testenv_config_generation"

func (e *Env) startPrometheus(ctx context.Context) error {
	e.promConfig = e.path("prometheus.yml")
	e.promGen = 1
	if err := writeFileAtomic(e.promConfig, prometheusConfig(e.promGen, e.opts.ScrapeConfigs)); err != nil {
		return err
	}
	data := e.path("prometheus-data")
	ports, _, err := e.startListening(ctx, "prometheus", e.bins.prometheus, 1,
		func(ports []int) []string {
			return []string{
				"--config.file=" + e.promConfig,
				"--storage.tsdb.path=" + data,
				"--web.listen-address=127.0.0.1:" + strconv.Itoa(ports[0]),
				"--web.enable-lifecycle",
			}
		},
		func(ctx context.Context, p *process, ports []int) error {
			url := loopbackURL("http", ports[0]) + "/-/ready"
			return e.poll(ctx, p, "prometheus ready", func(ctx context.Context) error {
				return e.getOK(ctx, url, false)
			})
		})
	if err != nil {
		return err
	}
	e.PrometheusURL = loopbackURL("http", ports[0])
	return nil
}

func prometheusConfig(gen int, scrapeConfigs string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    %s: gen-%d\n", generationLabel, gen)
	if strings.TrimSpace(scrapeConfigs) == "" {
		b.WriteString("scrape_configs: []\n")
	} else {
		b.WriteString("scrape_configs:\n")
		b.WriteString(scrapeConfigs)
		if !strings.HasSuffix(scrapeConfigs, "\n") {
			b.WriteString("\n")
		}
	}
	return []byte(b.String())
}

// SetScrapeConfigs replaces Prometheus' scrape_configs (YAML list items, as in
// Options.ScrapeConfigs), reloads it, and returns once Prometheus reports the
// new configuration. A configuration Prometheus rejects is reported and the
// previous one stays in force.
//
// Prometheus 2.42 hands new targets to its scrapers in 5-second batches, so
// the first samples of a new target arrive about 5 s (at most about 10 s)
// after this returns: tests poll their queries with a deadline.
func (e *Env) SetScrapeConfigs(ctx context.Context, yamlItems string) error {
	e.promMu.Lock()
	defer e.promMu.Unlock()
	prev, err := os.ReadFile(e.promConfig)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	gen := e.promGen + 1
	if err := writeFileAtomic(e.promConfig, prometheusConfig(gen, yamlItems)); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if err := e.reloadPrometheus(ctx); err != nil {
		// Keep the file in step with what runs, so a later reload is sane.
		_ = writeFileAtomic(e.promConfig, prev)
		return fmt.Errorf("testenv: reloading prometheus: %w", err)
	}
	e.promGen = gen
	want := fmt.Sprintf("gen-%d", gen)
	err = e.poll(ctx, nil, "prometheus config "+want+" loaded", func(ctx context.Context) error {
		got, err := e.prometheusGeneration(ctx)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("prometheus runs config %q, want %q", got, want)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return nil
}

func (e *Env) reloadPrometheus(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.PrometheusURL+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("POST /-/reload: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// prometheusGeneration returns the generation label of the running config.
func (e *Env) prometheusGeneration(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.PrometheusURL+"/api/v1/status/config", nil)
	if err != nil {
		return "", err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			YAML string `json:"yaml"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("decoding /api/v1/status/config: %w", err)
	}
	var cfg struct {
		Global struct {
			ExternalLabels map[string]string `json:"external_labels"`
		} `json:"global"`
	}
	if err := yaml.Unmarshal([]byte(body.Data.YAML), &cfg); err != nil {
		return "", fmt.Errorf("parsing prometheus config: %w", err)
	}
	return cfg.Global.ExternalLabels[generationLabel], nil
}

// writeFileAtomic replaces path so that Prometheus never reads half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}
