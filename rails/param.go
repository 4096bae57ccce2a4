package rails

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors from ToParam, matched with errors.Is.
var (
	// ErrMissingValue means the value is absent, null or "".
	ErrMissingValue = errors.New("missing parameter")
	// ErrUnrenderable means the value is a float, object or array, which
	// to_param would not turn into a stable stream name.
	ErrUnrenderable = errors.New("unrenderable parameter")
)

// ToParam renders a decoded JSON value as Ruby's to_param would, for the
// values that give a stable stream name: strings as is, integers as digits,
// booleans as true/false. Absent (nil), null and "" are ErrMissingValue;
// floats, objects and arrays are ErrUnrenderable. Numbers should be decoded
// as json.Number so that big integers keep their digits.
func ToParam(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", fmt.Errorf("%w: absent or null", ErrMissingValue)
	case string:
		if v == "" {
			return "", fmt.Errorf("%w: empty string", ErrMissingValue)
		}
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case json.Number:
		return IntegerParam(v)
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	}
	return "", fmt.Errorf("%w: %s cannot be part of a stream name", ErrUnrenderable, JSONKind(v))
}

// IntegerParam renders an integer as its digits and refuses anything with a
// fraction or exponent: Ruby would make it a Float, whose to_param ("1.0",
// "1.0e+20") no JavaScript client reproduces reliably.
func IntegerParam(n json.Number) (string, error) {
	s := string(n)
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", fmt.Errorf("%w: number %s is not an integer", ErrUnrenderable, s)
	}
	if strings.Trim(digits, "0") == "" {
		return "0", nil // JSON -0 is Ruby's Integer 0
	}
	return s, nil
}

// JSONKind names the JSON type of a decoded value, for error messages.
func JSONKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, int, int64:
		return "a number"
	case float32, float64:
		return "a float"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
