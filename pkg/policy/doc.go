// Package policy defines how meshcanary stages and judges a release, and
// loads those definitions from the policy file.
//
// Contract:
//
//   - The types in types.go are what other packages consume. A *File
//     returned by Parse or LoadFile, and every Policy from a Store, has had
//     Defaults applied and passed Validate: consumers never re-check or
//     default anything.
//   - Thresholds (Value) carry their unit as written: fractions for "1%",
//     seconds for "2s", plain numbers otherwise. Validate guarantees that
//     latency metrics are bounded by durations, error-rate and success-rate
//     by shares from 0 to 1, request-rate by plain numbers, and custom
//     metrics by numbers or percentages.
//   - A Rule's When always parses with ParseCondition, on a metric the
//     policy knows, with a value whose unit fits it as a threshold's must.
//     Window, Freeze and StartAt always parse with ParseSchedule, which
//     reads a schedule without a zone prefix in UTC. Gates are consistent
//     with their type (stage and URL where needed, and only there).
//   - Parse reports every problem at once as a *ValidationError whose
//     field.ErrorList names each field by path (policies[0].checks[1].max).
//   - A Store always resolves the policy named "default", to the built-in
//     Default unless the file defines its own.
//   - A Watcher only ever replaces a Store's policies with a file that
//     parsed and validated; a bad file leaves the last good policies in
//     force and is reported through its callback.
package policy
