package virtualservice

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// FitError says why a VirtualService does not fit what meshcanary manages.
// It is meant to be shown to the owner of the VirtualService, who has to
// change either the object or the meshcanary annotations; so it names the
// field in the object, not a place in meshcanary's code.
type FitError struct {
	Object   string // e.g. `VirtualService shop/reviews`
	Field    string // e.g. `spec.http[1].route`
	Expected string // e.g. `a destination with subset "canary"`
	Found    string // e.g. `subsets "stable", "legacy"`; "" when there is nothing useful to show
	Hint     string // what the user can do about it, when Expected alone does not say
}

func (e *FitError) Error() string {
	var b strings.Builder
	if e.Object != "" {
		b.WriteString(e.Object)
		b.WriteString(": ")
	}
	b.WriteString(e.Field)
	b.WriteString(": expected ")
	b.WriteString(e.Expected)
	if e.Found != "" {
		b.WriteString(", found ")
		b.WriteString(e.Found)
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// maxShown bounds how much of a user's string goes into an error message, so
// that a huge or hostile value cannot flood logs and events.
const maxShown = 64

// quote quotes s for an error message, shortening it if it is long.
func quote(s string) string {
	if len(s) > maxShown {
		// Cut on a rune boundary so the quoted text stays valid UTF-8.
		cut := maxShown
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// describe says what a JSON value is, for the Found part of a FitError.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + quote(v)
	case bool:
		return strconv.FormatBool(v)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case float64:
		return "number " + strconv.FormatFloat(v, 'g', -1, 64)
	case float32:
		return "number " + strconv.FormatFloat(float64(v), 'g', -1, 32)
	case json.Number:
		return "number " + strings.Trim(quote(string(v)), `"`)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return fmt.Sprintf("number %v", v)
	}
	return fmt.Sprintf("a value of type %T", v)
}

// isFinite guards float conversions: NaN and ±Inf never come from JSON but
// may come from a map built in code.
func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
