// Package bench holds meshcanary's benchmarks against the real local control
// plane, Prometheus and the simulated mesh: detection time of a regression
// at each stage, the manual rollback reaction (also with every Prometheus
// query hanging), the reconciles of a stage waiting for evidence, and
// failed requests during a full promotion. They measure; they assert only that the scenario ran.
// Run them with `make bench`; docs/performance.md records the figures.
package bench
