package gates

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// documentedBody is the schema doc.go documents, written out again here
// so that renaming a field of Body breaks this test, not a receiver.
type documentedBody struct {
	Version      string   `json:"version"`
	Gate         string   `json:"gate"`
	Type         string   `json:"type"`
	Namespace    string   `json:"namespace"`
	Deployment   string   `json:"deployment"`
	Canary       string   `json:"canary"`
	Revision     string   `json:"revision"`
	Stage        int      `json:"stage"`
	Stages       int      `json:"stages"`
	CanaryWeight int      `json:"canaryWeight"`
	Images       []string `json:"images"`
	Attempt      int      `json:"attempt"`
}

// decodeStrictly decodes one JSON object into documentedBody, refusing
// unknown fields, and returns it with the object's keys.
func decodeStrictly(t *testing.T, raw []byte) (documentedBody, []string) {
	t.Helper()
	var b documentedBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("decoding %s strictly: %v", raw, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return b, slices.Sorted(maps.Keys(m))
}

// docExample is the JSON example of the request body in doc.go.
func docExample(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for line := range strings.Lines(string(src)) {
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "//\t{":
			in = true
		case in && line == "//\t}":
			return []byte(strings.Join(append(out, "}"), "\n"))
		}
		if in {
			out = append(out, strings.TrimPrefix(line, "//\t"))
		}
	}
	t.Fatal("doc.go has no JSON example of the body")
	return nil
}

func documentedKeys() []string {
	var keys []string
	for f := range reflect.TypeFor[documentedBody]().Fields() {
		keys = append(keys, f.Tag.Get("json"))
	}
	slices.Sort(keys)
	return keys
}

func TestBodyMatchesTheDocumentedSchema(t *testing.T) {
	tests := []struct {
		name string
		body Body
		want documentedBody
	}{
		{
			name: "every field is sent under its documented name, with version v1 whatever the caller set",
			body: Body{
				Version: "v0", Gate: "load", Type: "during-stage", Namespace: "payments", Deployment: "payment-service",
				Canary: "payment-service-canary", Revision: "7d9f8c6b5", Stage: 2, Stages: 4, CanaryWeight: 10,
				Images: []string{"registry.example.com/payment:v2", "registry.example.com/proxy:1.2"}, Attempt: 3,
			},
			want: documentedBody{
				Version: "v1", Gate: "load", Type: "during-stage", Namespace: "payments", Deployment: "payment-service",
				Canary: "payment-service-canary", Revision: "7d9f8c6b5", Stage: 2, Stages: 4, CanaryWeight: 10,
				Images: []string{"registry.example.com/payment:v2", "registry.example.com/proxy:1.2"}, Attempt: 3,
			},
		},
		{
			name: "unknown images are sent as an empty list, not null",
			body: Body{Gate: "smoke", Type: "pre-rollout", Namespace: "payments", Deployment: "payment-service", Attempt: 1},
			want: documentedBody{Version: "v1", Gate: "smoke", Type: "pre-rollout", Namespace: "payments", Deployment: "payment-service", Images: []string{}, Attempt: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newGateServer(t, script("", 200))
			done := &doneRecorder{}
			r := NewRunner(fastOptions(done, nil))
			startRunner(t, r)
			req := request("payments/payment-service/gate/7d9f8c6b5/1", "payment-service", srv.URL+"/gate")
			req.Body = tt.body
			r.Ensure(req)
			finished(t, r, req, done, 1)

			srv.mu.Lock()
			raw, hreq := srv.bodies[0], srv.requests[0]
			srv.mu.Unlock()
			got, keys := decodeStrictly(t, raw)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("body = %+v, want %+v", got, tt.want)
			}
			if want := documentedKeys(); !slices.Equal(keys, want) {
				t.Errorf("body has keys %q, want every documented key %q", keys, want)
			}
			for h, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "meshcanary"} {
				if got := hreq.Header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			if hreq.Method != "POST" {
				t.Errorf("method = %s, want POST", hreq.Method)
			}
		})
	}
}

func TestDocExampleIsTheBodySchema(t *testing.T) {
	example, keys := decodeStrictly(t, docExample(t))
	if want := documentedKeys(); !slices.Equal(keys, want) {
		t.Errorf("doc.go's example has keys %q, want %q", keys, want)
	}
	if example.Version != BodyVersion {
		t.Errorf("doc.go's example has version %q, want %q", example.Version, BodyVersion)
	}
	// Body must encode to exactly these keys too.
	raw, err := json.Marshal(Body{})
	if err != nil {
		t.Fatal(err)
	}
	if _, got := decodeStrictly(t, raw); !slices.Equal(got, keys) {
		t.Errorf("Body encodes keys %q, doc.go documents %q", got, keys)
	}
}
