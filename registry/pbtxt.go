package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ParseModelConfigText decodes and validates a Triton config.pbtxt: the
// protobuf text form of Triton's model configuration, limited to the
// fields ParseModelConfig takes in Triton's spelling (and infergate's
// own). It turns the text into the JSON form, which ParseModelConfig then
// reads, so that both files are held to the same rules and a field that
// has no counterpart is refused by name.
func ParseModelConfigText(data []byte) (ModelConfig, error) {
	j, err := pbtxtToJSON(data)
	if err != nil {
		return ModelConfig{}, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	return ParseModelConfig(j)
}

// repeatedFields are the fields of Triton's model configuration (and of
// infergate's) that hold lists: in the text form a list may be written
// once in brackets, or as the field given again and again, or once alone.
var repeatedFields = map[string]bool{
	"input": true, "output": true, "instance_group": true, "dims": true,
	"gpus": true, "preferred_batch_size": true, "preferred_batch_sizes": true,
	"versions": true,
}

// pbtxtToJSON converts protobuf text to JSON: messages become objects,
// enum values strings, and the repeated fields (and any field given more
// than once) arrays.
func pbtxtToJSON(data []byte) ([]byte, error) {
	p := &pbtxtParser{s: data, line: 1}
	v, err := p.fields(0)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// pbtxtObject is one message: its fields in order of first appearance.
type pbtxtObject struct {
	keys   []string
	values map[string]any
	listed map[string]bool // given in brackets
}

// MarshalJSON writes the fields in order of first appearance.
func (o *pbtxtObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		v := o.values[k]
		if list, ok := v.([]any); ok && !o.listed[k] && !repeatedFields[k] && len(list) == 1 {
			v = list[0]
		}
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
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

// maxPbtxtDepth bounds the nesting of messages and lists: Triton's
// configuration nests four deep; a file nested far deeper is not one.
const maxPbtxtDepth = 32

func (p *pbtxtParser) errorf(format string, args ...any) error {
	return fmt.Errorf("config.pbtxt line %d: %s", p.line, fmt.Sprintf(format, args...))
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
	o := &pbtxtObject{values: map[string]any{}, listed: map[string]bool{}}
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
			o.listed[name] = true
		case c == '{' || c == '<':
			v, err = p.message(depth + 1)
		case !colon:
			return nil, p.errorf("want ':' or '{' after field %q, found %s", name, p.found())
		default:
			v, err = p.scalar()
		}
		if err != nil {
			return nil, err
		}
		prev, seen := o.values[name]
		if seen && !repeatedFields[name] {
			return nil, p.errorf("field %q is given twice; it takes one value", name)
		}
		if !seen {
			o.keys = append(o.keys, name)
		}
		list, _ := prev.([]any)
		if list == nil {
			list = []any{} // dims: [] is a list, not null
		}
		if more, ok := v.([]any); ok {
			o.values[name] = append(list, more...)
		} else {
			o.values[name] = append(list, v)
		}
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
func (p *pbtxtParser) list(depth int) ([]any, error) {
	if depth > maxPbtxtDepth {
		return nil, p.errorf("lists nest deeper than %d", maxPbtxtDepth)
	}
	out := []any{}
	for {
		switch c := p.peek(); c {
		case ']':
			p.i++
			return out, nil
		case 0:
			return nil, p.errorf("the text ends inside a list: a ']' is missing")
		case '{', '<':
			m, err := p.message(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		default:
			v, err := p.scalar()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
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
		tok := string(p.s[start:p.i])
		if strings.Contains(tok, "_") {
			return nil, p.errorf("%q is not a number", tok)
		}
		if n, err := strconv.ParseInt(tok, 0, 64); err == nil {
			return n, nil
		}
		f, err := strconv.ParseFloat(strings.TrimRight(tok, "fF"), 64)
		if err != nil {
			return nil, p.errorf("%q is not a number", tok)
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
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
