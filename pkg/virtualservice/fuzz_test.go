package virtualservice

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzSetCanaryWeight feeds arbitrary YAML/JSON to SetCanaryWeight: it must
// never panic, must fail only with a *FitError (the subsets are valid and the
// weight is in range), and every edit it returns must keep the invariants
// checked by checkEdit.
func FuzzSetCanaryWeight(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, w := range []uint8{5, 42, 105} {
			f.Add(data, w, "", w%2 == 0)
		}
		f.Add(data, uint8(55), "primary", true)
		f.Add(data, uint8(35), "search", false)
	}
	for _, s := range []string{
		`{"spec":[1]}`,
		`{"spec":{"http":"x"}}`,
		`{"spec":{"http":[null,{"route":"x"}]}}`,
		`{"spec":{"http":[{"route":[{"destination":{"host":"a","subset":"stable"},"weight":12.5},{"destination":{"host":"a","subset":"canary"}}]}]}}`,
		`{"spec":{"http":[{"route":[{"destination":{"host":"a","subset":"stable"},"weight":"50"},{"destination":{"host":"a","subset":"canary"},"weight":null}]}]}}`,
		`{"metadata":{"namespace":"ns"},"spec":{"http":[{"route":[{"destination":{"host":"a.ns","subset":"stable"}},{"destination":{"host":"a","subset":"canary"}},{"destination":{"host":"b"},"weight":100}]}]}}`,
	} {
		f.Add([]byte(s), uint8(60), "", true)
	}

	f.Fuzz(func(t *testing.T, data []byte, weight uint8, route string, unstructured bool) {
		decode := decodePlain
		if unstructured {
			decode = decodeUnstructured
		}
		obj, err := decode(data)
		if err != nil {
			return
		}
		pristine, _ := deepCopy(obj).(map[string]any)
		// Mostly in range, sometimes just outside it.
		canary := int(weight)%111 - 5
		target := Target{Route: route, StableSubset: "stable", CanarySubset: "canary"}

		e, err := SetCanaryWeight(obj, target, canary)
		if !reflect.DeepEqual(obj, pristine) {
			t.Fatal("input was mutated")
		}
		if canary < 0 || canary > 100 {
			if err == nil {
				t.Fatalf("canary weight %d accepted", canary)
			}
			return
		}
		if err != nil {
			var fit *FitError
			if !errors.As(err, &fit) {
				t.Fatalf("error is not a *FitError: %v", err)
			}
			if fit.Field == "" || fit.Expected == "" {
				t.Fatalf("FitError without field or expectation: %#v", fit)
			}
			return
		}
		if err := checkEdit(obj, pristine, target, canary, e); err != nil {
			t.Fatal(err)
		}
	})
}
