// Command meshcanary is the controller (`meshcanary controller`) and the
// kubectl plugin (installed as kubectl-meshcanary: status, list, rollback,
// promote, pause, resume, approve, retry, history, init, lint; see pkg/cli). main
// only wires: it parses flags into option structs, builds clients,
// informers, the policy store, the analyzer, the gate runner and the
// notification dispatcher, and passes them to pkg/controller through
// constructors. No package state, no init().
package main
