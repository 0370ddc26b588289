// Package annotations is the public interface of meshcanary on a stable
// Deployment: the keys users write to opt in, configure and command a
// release, and the keys the controller writes to report on it.
//
// Contract:
//
//   - The key constants are part of meshcanary's user-facing API: renaming
//     one breaks every annotated Deployment and script that uses it.
//   - Parse never returns a half-checked Spec: either every configuration
//     annotation is well formed and every default is filled, or the error
//     (a *ParseError) lists each malformed annotation with its key, its
//     value and what was expected.
//   - ParseCommands reads the one-shot commands a person writes with
//     kubectl annotate; the controller removes each command it has acted
//     on (CommandKeys) so that a command runs once.
//   - The state keys (Phase, Weight, Stage, Revision, Message, State) are
//     written only by the controller; this package does not read them.
package annotations
