// Command meshcanary is the controller (`meshcanary controller`) and, later,
// the kubectl plugin. main only wires: it parses flags into option structs,
// builds clients, informers, the policy store and the analyzer, and passes
// them to pkg/controller through constructors. No package state, no init().
package main
