package virtualservice

import (
	"encoding/json"
	"math"
)

// maxDepth bounds how deep deepCopy descends. It matches the nesting limit of
// encoding/json, so no decoded object comes near it; a map built in code that
// contains itself hits it instead of overflowing the stack.
const maxDepth = 10000

// deepCopy copies the JSON containers of v so that writing into the copy can
// never reach the caller's object. Scalars are immutable and shared. Values of
// other types cannot come from decoding JSON; they are shared as they are,
// which is safe because this package writes only into maps and lists it
// copied.
func deepCopy(v any) any {
	c, _ := deepCopyDepth(v, 0)
	return c
}

func deepCopyDepth(v any, depth int) (any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v, true
		}
		c := make(map[string]any, len(v))
		for k, e := range v {
			ec, ok := deepCopyDepth(e, depth+1)
			if !ok {
				return nil, false
			}
			c[k] = ec
		}
		return c, true
	case []any:
		if v == nil {
			return v, true
		}
		c := make([]any, len(v))
		for i, e := range v {
			ec, ok := deepCopyDepth(e, depth+1)
			if !ok {
				return nil, false
			}
			c[i] = ec
		}
		return c, true
	}
	return v, true
}

// maxWeight is the largest weight Istio can hold (a protobuf int32).
const maxWeight = math.MaxInt32

// asInt reads an integral JSON number in whichever Go type the decoder chose:
// int64 from unstructured, float64 from encoding/json, json.Number with
// UseNumber, or plain ints from maps built in code. 12.0 counts as 12 because
// after a JSON round trip it is indistinguishable from it; 12.5 does not.
func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint:
		return uintToInt(uint64(n))
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return uintToInt(n)
	case float32:
		return floatToInt(float64(n))
	case float64:
		return floatToInt(n)
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i, true
		}
		if f, err := n.Float64(); err == nil {
			return floatToInt(f)
		}
	}
	return 0, false
}

func uintToInt(u uint64) (int64, bool) {
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

func floatToInt(f float64) (int64, bool) {
	// The bounds keep the conversion exact; weights are far inside them.
	if !isFinite(f) || f != math.Trunc(f) || f < -(1<<53) || f > 1<<53 {
		return 0, false
	}
	return int64(f), true
}
