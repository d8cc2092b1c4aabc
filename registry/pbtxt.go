package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// ParseModelConfigText decodes and validates a Triton config.pbtxt: the
// protobuf text form of Triton's model configuration, limited to the
// fields ParseModelConfig takes in Triton's spelling (and infergate's
// own). It turns the text into the tree of JSON values that
// ParseModelConfig reads, so that both files are held to the same rules;
// errors name the line.
func ParseModelConfigText(data []byte) (ModelConfig, error) {
	tree, lines, err := configTextTree(data)
	if err != nil {
		return ModelConfig{}, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	return parseTree(tree, func(path string) string {
		if l, ok := lineOf(lines, path); ok {
			return fmt.Sprintf("config.pbtxt line %d: ", l)
		}
		return ""
	})
}

// lineOf returns the line of the field at path (input[1].data_type names
// the second entry's field; input.data_type, as the checks of a list as a
// whole give it, the first entry's). A field the text leaves out takes
// the line of the nearest message around it that the text has.
func lineOf(lines map[string]int, path string) (int, bool) {
	for p := path; p != ""; {
		if l, ok := lines[p]; ok {
			return l, true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0, false
}

// configTextTree turns config.pbtxt text into the tree of JSON values
// that parseTree reads, and the line of each field's path.
func configTextTree(data []byte) (tree map[string]any, lines map[string]int, err error) {
	p := &pbtxtParser{s: data, line: 1}
	o, err := p.fields(0)
	if err != nil {
		return nil, nil, err
	}
	lines = map[string]int{}
	tree, err = o.toJSON(configType, "", lines)
	return tree, lines, err
}

// stripIndices turns input[0].dims into input.dims.
func stripIndices(path string) string {
	var b strings.Builder
	depth := 0
	for i := range len(path) {
		switch c := path[i]; {
		case c == '[':
			depth++
		case c == ']':
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// pbtxtObject is one message: its fields in order of first appearance,
// each with every value it was given.
type pbtxtObject struct {
	keys   []string
	values map[string][]pbtxtValue
}

// pbtxtValue is one value in the text: a scalar (string, int64,
// json.Number, bool, or an enum value's name as a string), a message
// (*pbtxtObject), or a bracketed list ([]pbtxtValue).
type pbtxtValue struct {
	v    any
	line int
}

// errorAt returns an error that names line.
func errorAt(line int, format string, args ...any) error {
	return fmt.Errorf("config.pbtxt line %d: %s", line, fmt.Sprintf(format, args...))
}

// toJSON converts o, a message of Go type t at path, into JSON values,
// checking its fields against t: a field t has not is refused at its
// line; a list field takes its values from brackets and from repeats
// alike; any other field takes one value. lines receives the line of
// each field's first value and of each list entry, by path with list
// indices (input[1].dims) and, for the first, without (input.dims).
func (o *pbtxtObject) toJSON(t reflect.Type, path string, lines map[string]int) (map[string]any, error) {
	t = indirect(t)
	out := make(map[string]any, len(o.keys))
	for _, k := range o.keys {
		vals := o.values[k]
		p := joinPath(path, k)
		if _, ok := lines[p]; !ok {
			lines[p] = vals[0].line
		}
		if _, ok := lines[stripIndices(p)]; !ok {
			lines[stripIndices(p)] = vals[0].line
		}
		ft, ok := jsonField(t, k)
		if _, inert := inertFields[stripIndices(p)]; !ok && inert {
			// Not a setting: checkTree drops it if it holds Triton's
			// default, and refuses it otherwise.
			out[k] = genericJSON(vals)
			continue
		}
		if !ok {
			return nil, errorAt(vals[0].line, "%s", unknownField(k, path))
		}
		if it := indirect(ft); it.Kind() == reflect.Map {
			// A map is written as its entries, each a message of a key
			// and a value, repeated or in brackets.
			m := map[string]any{}
			for _, v := range flatten(vals) {
				o, ok := v.v.(*pbtxtObject)
				var key pbtxtValue
				if ok && len(o.values["key"]) == 1 && len(o.values["value"]) == 1 && len(o.keys) == 2 {
					key = o.values["key"][0]
				}
				var name string
				switch k := key.v.(type) {
				case string:
					name = k
				case int64: // priority_queue_policy's keys are priority levels
					name = strconv.FormatInt(k, 10)
				default:
					return nil, errorAt(v.line, "each entry of %s is a message of a key (a string or an integer) and a value: { key: \"...\" value { ... } }", p)
				}
				lines[joinPath(p, name)] = v.line
				lines[stripIndices(joinPath(p, name))] = v.line
				e, err := o.values["value"][0].toJSON(it.Elem(), joinPath(p, name), lines)
				if err != nil {
					return nil, err
				}
				m[name] = e
			}
			out[k] = m
			continue
		}
		if it := indirect(ft); it.Kind() == reflect.Slice {
			list := []any{}
			for _, item := range flatten(vals) {
				ip := fmt.Sprintf("%s[%d]", p, len(list))
				lines[ip] = item.line
				e, err := item.toJSON(it.Elem(), ip, lines)
				if err != nil {
					return nil, err
				}
				list = append(list, e)
			}
			out[k] = list
			continue
		}
		if len(vals) > 1 {
			return nil, errorAt(vals[1].line, "field %q is given again; it takes one value", k)
		}
		if _, ok := vals[0].v.([]pbtxtValue); ok {
			return nil, errorAt(vals[0].line, "field %q takes one value, not a list", k)
		}
		v, err := vals[0].toJSON(ft, p, lines)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// flatten returns the values of vals, a field's occurrences, with
// bracketed lists spread out.
func flatten(vals []pbtxtValue) []pbtxtValue {
	var out []pbtxtValue
	for _, v := range vals {
		if l, ok := v.v.([]pbtxtValue); ok {
			out = append(out, l...)
		} else {
			out = append(out, v)
		}
	}
	return out
}

// genericJSON converts a field's occurrences without a type to follow:
// one value as itself, more as a list.
func genericJSON(vals []pbtxtValue) any {
	conv := func(v pbtxtValue) any {
		switch x := v.v.(type) {
		case *pbtxtObject:
			m := make(map[string]any, len(x.keys))
			for _, k := range x.keys {
				m[k] = genericJSON(x.values[k])
			}
			return m
		case []pbtxtValue:
			l := make([]any, len(x))
			for i, e := range x {
				l[i] = genericJSON([]pbtxtValue{e})
			}
			return l
		}
		return v.v
	}
	if len(vals) == 1 {
		return conv(vals[0])
	}
	l := make([]any, len(vals))
	for i, v := range vals {
		l[i] = conv(v)
	}
	return l
}

// toJSON converts one value of type t.
func (v pbtxtValue) toJSON(t reflect.Type, path string, lines map[string]int) (any, error) {
	switch x := v.v.(type) {
	case *pbtxtObject:
		if it := indirect(t); it.Kind() != reflect.Struct {
			return nil, errorAt(v.line, "%s takes %s, not a message", path, typeWords(it))
		}
		return x.toJSON(t, path, lines)
	case []pbtxtValue:
		return nil, errorAt(v.line, "%s takes one value, not a list", path)
	}
	return v.v, nil
}

// pbtxtParser reads protobuf text: fields "name: value", "name { ... }"
// (or "name: { ... }", or with < >), lists in brackets, strings in either
// quote, numbers, identifiers (enum values, true, false), "#" comments,
// and optional "," or ";" between fields.
type pbtxtParser struct {
	s    []byte
	i    int
	line int
}

// maxPbtxtDepth bounds the nesting of messages: Triton's configuration
// nests four deep; a file nested far deeper is not one.
const maxPbtxtDepth = 32

func (p *pbtxtParser) errorf(format string, args ...any) error {
	return errorAt(p.line, format, args...)
}

// skip passes over spaces and comments.
func (p *pbtxtParser) skip() {
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '\n':
			p.line++
			p.i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			p.i++
		case c == '#':
			for p.i < len(p.s) && p.s[p.i] != '\n' {
				p.i++
			}
		default:
			return
		}
	}
}

// peek returns the next byte after spaces and comments, or 0 at the end.
func (p *pbtxtParser) peek() byte {
	p.skip()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// fields reads fields until the end of the text (depth 0) or the closing
// bracket of a message, which it leaves for the caller.
func (p *pbtxtParser) fields(depth int) (*pbtxtObject, error) {
	o := &pbtxtObject{values: map[string][]pbtxtValue{}}
	for {
		c := p.peek()
		switch {
		case c == 0:
			if depth > 0 {
				return nil, p.errorf("the text ends inside a message: a '}' is missing")
			}
			return o, nil
		case c == '}' || c == '>':
			if depth == 0 {
				return nil, p.errorf("%q closes no message", c)
			}
			return o, nil
		case c == ',' || c == ';':
			p.i++
			continue
		}
		name := p.ident()
		if name == "" {
			return nil, p.errorf("want a field name, found %s", p.found())
		}
		line := p.line
		colon := false
		if p.peek() == ':' {
			p.i++
			colon = true
		}
		var v any
		var err error
		switch c := p.peek(); {
		case c == '[':
			p.i++
			v, err = p.list(depth + 1)
		case c == '{' || c == '<':
			v, err = p.message(depth + 1)
		case !colon:
			return nil, p.errorf("want ':' or '{' after field %q, found %s", name, p.found())
		default:
			line = p.line
			v, err = p.scalar()
		}
		if err != nil {
			return nil, err
		}
		if _, seen := o.values[name]; !seen {
			o.keys = append(o.keys, name)
		}
		o.values[name] = append(o.values[name], pbtxtValue{v: v, line: line})
	}
}

// message reads a message in { } or < >.
func (p *pbtxtParser) message(depth int) (*pbtxtObject, error) {
	if depth > maxPbtxtDepth {
		return nil, p.errorf("messages nest deeper than %d", maxPbtxtDepth)
	}
	open := p.s[p.i]
	p.i++
	o, err := p.fields(depth)
	if err != nil {
		return nil, err
	}
	c := p.peek()
	if (open == '{' && c != '}') || (open == '<' && c != '>') {
		return nil, p.errorf("a message opened with %q is closed with %q", open, c)
	}
	p.i++
	return o, nil
}

// list reads the values of a bracketed list, its '[' read.
func (p *pbtxtParser) list(depth int) ([]pbtxtValue, error) {
	out := []pbtxtValue{}
	for {
		switch c := p.peek(); c {
		case ']':
			p.i++
			return out, nil
		case 0:
			return nil, p.errorf("the text ends inside a list: a ']' is missing")
		case '{', '<':
			line := p.line
			m, err := p.message(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, pbtxtValue{v: m, line: line})
		default:
			line := p.line
			v, err := p.scalar()
			if err != nil {
				return nil, err
			}
			out = append(out, pbtxtValue{v: v, line: line})
		}
		switch c := p.peek(); c {
		case ',':
			p.i++
		case ']':
		case 0:
			return nil, p.errorf("the text ends inside a list: a ']' is missing")
		default:
			return nil, p.errorf("want ',' or ']' in a list, found %s", p.found())
		}
	}
}

// scalar reads a string, a number, or an identifier.
func (p *pbtxtParser) scalar() (any, error) {
	c := p.peek()
	if c == '"' || c == '\'' {
		var sb strings.Builder
		// Adjacent strings are one string, as in C.
		for c == '"' || c == '\'' {
			if err := p.str(&sb); err != nil {
				return nil, err
			}
			c = p.peek()
		}
		return sb.String(), nil
	}
	if c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9') {
		start := p.i
		p.i++
		for p.i < len(p.s) && isNumberByte(p.s[p.i]) {
			p.i++
		}
		return p.number(string(p.s[start:p.i]))
	}
	id := p.ident()
	switch id {
	case "":
		return nil, p.errorf("want a value, found %s", p.found())
	case "true", "True", "t":
		return true, nil
	case "false", "False", "f":
		return false, nil
	}
	return id, nil
}

// number converts a number token: an integer (decimal, 0x hexadecimal or
// 0 octal) or a finite decimal fraction.
func (p *pbtxtParser) number(tok string) (any, error) {
	n, err := strconv.ParseInt(tok, 0, 64)
	if err == nil && !strings.ContainsAny(tok, "_bBoO") {
		return n, nil
	}
	if errors.Is(err, strconv.ErrRange) {
		return nil, p.errorf("%s is out of the range of a 64-bit integer", tok)
	}
	if strings.ContainsAny(tok, "_xXbBoO") {
		return nil, p.errorf("%q is not a number", tok)
	}
	f, err := strconv.ParseFloat(strings.TrimRight(tok, "fF"), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, p.errorf("%q is not a finite number", tok)
	}
	// In exponent form, so that an integer field refuses it (8.0 is no
	// integer in protobuf text either).
	return json.Number(strconv.FormatFloat(f, 'e', -1, 64)), nil
}

// isNumberByte reports whether c may continue a number token: digits,
// letters (hexadecimal, exponents, suffixes; a letter that fits none makes
// the token no number), '.', '+', '-' and '_'.
func isNumberByte(c byte) bool {
	return c == '.' || c == '+' || c == '-' || c == '_' ||
		(c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// str reads one quoted string into sb.
func (p *pbtxtParser) str(sb *strings.Builder) error {
	q := p.s[p.i]
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case q:
			return nil
		case '\n':
			return p.errorf("a string runs past the end of its line")
		case '\\':
			if p.i >= len(p.s) {
				return p.errorf("a string ends in a backslash")
			}
			e := p.s[p.i]
			p.i++
			switch e {
			case 'n':
				sb.WriteByte('\n')
			case 't':
				sb.WriteByte('\t')
			case 'r':
				sb.WriteByte('\r')
			case '\\', '"', '\'':
				sb.WriteByte(e)
			default:
				return p.errorf("a string holds the escape \\%c, which infergate does not read; write the character itself", e)
			}
		default:
			sb.WriteByte(c)
		}
	}
	return p.errorf("a string is not closed")
}

// ident reads a name: a letter or '_', then letters, digits, '_' and '.'.
func (p *pbtxtParser) ident() string {
	p.skip()
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (p.i > start && (c == '.' || (c >= '0' && c <= '9'))) {
			p.i++
			continue
		}
		break
	}
	return string(p.s[start:p.i])
}

// found describes what is at the current position, for errors.
func (p *pbtxtParser) found() string {
	if p.i >= len(p.s) {
		return "the end of the text"
	}
	end := min(p.i+16, len(p.s))
	if nl := bytes.IndexByte(p.s[p.i:end], '\n'); nl >= 0 {
		end = p.i + nl
	}
	return strconv.Quote(string(p.s[p.i:end]))
}
