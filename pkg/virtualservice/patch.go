package virtualservice

import (
	"encoding/json"
	"strconv"
	"strings"
)

// JSON Patch operations used by this package (RFC 6902).
const (
	OpTest    = "test"
	OpReplace = "replace"
	OpAdd     = "add"
)

// PatchOp is one RFC 6902 JSON Patch operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// MarshalJSON always writes "value" for operations that take one, even when it
// is 0, "" or null: a `test` of weight 0 without its value would be a
// different (and invalid) operation. Only "remove" goes without a value.
func (o PatchOp) MarshalJSON() ([]byte, error) {
	if o.Op == "remove" {
		return json.Marshal(struct {
			Op   string `json:"op"`
			Path string `json:"path"`
		}{o.Op, o.Path})
	}
	return json.Marshal(struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}{o.Op, o.Path, o.Value})
}

// PatchJSON is the JSON Patch document for Ops, to send with
// types.JSONPatchType. With no ops it is an empty patch ("[]"), which a
// server accepts as a no-op; callers should rather skip the request when
// Changed is false.
//
// Values are encoded by encoding/json with its default HTML escaping on
// purpose: the API server encodes the stored object the same way and its
// `test` compares encoded bytes, so a differently escaped string would fail
// the test forever.
func (e Edit) PatchJSON() ([]byte, error) {
	ops := e.Ops
	if ops == nil {
		ops = []PatchOp{}
	}
	return json.Marshal(ops)
}

// pointer builds an RFC 6901 JSON Pointer from reference tokens.
func pointer(tokens ...any) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		switch t := t.(type) {
		case int:
			b.WriteString(strconv.Itoa(t))
		case string:
			b.WriteString(escapeToken(t))
		}
	}
	return b.String()
}

// escapeToken escapes one JSON Pointer reference token; "~" must be escaped
// before "/" so that an escaped "/" is not escaped again.
func escapeToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
