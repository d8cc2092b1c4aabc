package oip

import "math"

// AppendModelMetadata appends md as the body of GET
// /v2/models/{name}[/versions/{version}]:
// {"name","versions","platform","inputs":[{"name","datatype","shape"}],"outputs":[...]}.
// "versions" is left out when md has none.
func AppendModelMetadata(dst []byte, md *ModelMetadata) []byte {
	dst = append(dst, `{"name":`...)
	dst = appendString(dst, md.Name)
	if len(md.Versions) > 0 {
		dst = append(dst, `,"versions":`...)
		dst = appendStrings(dst, md.Versions)
	}
	dst = append(dst, `,"platform":`...)
	dst = appendString(dst, md.Platform)
	dst = append(dst, `,"inputs":`...)
	dst = appendTensorMetadata(dst, md.Inputs)
	dst = append(dst, `,"outputs":`...)
	dst = appendTensorMetadata(dst, md.Outputs)
	return append(dst, '}')
}

// AppendServerMetadata appends sm as the body of GET /v2:
// {"name","version","extensions":[...]}.
func AppendServerMetadata(dst []byte, sm *ServerMetadata) []byte {
	dst = append(dst, `{"name":`...)
	dst = appendString(dst, sm.Name)
	dst = append(dst, `,"version":`...)
	dst = appendString(dst, sm.Version)
	dst = append(dst, `,"extensions":`...)
	dst = appendStrings(dst, sm.Extensions)
	return append(dst, '}')
}

// appendStrings appends ss as a JSON array of strings.
func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

// appendTensorMetadata appends ms as a JSON array of tensor metadata.
func appendTensorMetadata(dst []byte, ms []TensorMetadata) []byte {
	dst = append(dst, '[')
	for i := range ms {
		m := &ms[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = appendString(dst, m.Name)
		dst = append(dst, `,"datatype":"`...)
		dst = append(dst, m.Datatype.String()...)
		dst = append(dst, `","shape":`...)
		dst = appendShape(dst, m.Shape)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// DecodeModelMetadata decodes the body of a model metadata answer into md,
// replacing what it held. "name", "platform", "inputs" and "outputs" are
// required; unknown members are skipped.
func DecodeModelMetadata(md *ModelMetadata, body []byte) error {
	*md = ModelMetadata{}
	s := scanner{buf: body}
	top := where{field: "the model metadata"}
	if err := s.openObject(&top); err != nil {
		return err
	}
	const (
		fName = 1 << iota
		fVersions
		fPlatform
		fInputs
		fOutputs
	)
	var seen uint8
	for n := 0; ; {
		key, ok, err := s.nextMember(&n)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "name":
			if err := once(&seen, fName, &top, "name"); err != nil {
				return err
			}
			if md.Name, err = s.readOwnedString(&where{field: `"name"`}); err != nil {
				return err
			}
		case "versions":
			if err := once(&seen, fVersions, &top, "versions"); err != nil {
				return err
			}
			if md.Versions, err = s.readStrings(&where{field: `"versions"`}); err != nil {
				return err
			}
		case "platform":
			if err := once(&seen, fPlatform, &top, "platform"); err != nil {
				return err
			}
			if md.Platform, err = s.readOwnedString(&where{field: `"platform"`}); err != nil {
				return err
			}
		case "inputs":
			if err := once(&seen, fInputs, &top, "inputs"); err != nil {
				return err
			}
			if md.Inputs, err = s.readTensorMetadata("input"); err != nil {
				return err
			}
		case "outputs":
			if err := once(&seen, fOutputs, &top, "outputs"); err != nil {
				return err
			}
			if md.Outputs, err = s.readTensorMetadata("output"); err != nil {
				return err
			}
		default:
			if err := s.skipValue(); err != nil {
				return err
			}
		}
	}
	if err := s.end(); err != nil {
		return err
	}
	for _, m := range [...]struct {
		bit  uint8
		name string
	}{{fName, "name"}, {fPlatform, "platform"}, {fInputs, "inputs"}, {fOutputs, "outputs"}} {
		if seen&m.bit == 0 {
			return errorf("the model metadata has no %q", m.name)
		}
	}
	return nil
}

// DecodeServerMetadata decodes the body of GET /v2 into sm, replacing what
// it held. "name" and "version" are required; unknown members are skipped.
func DecodeServerMetadata(sm *ServerMetadata, body []byte) error {
	*sm = ServerMetadata{}
	s := scanner{buf: body}
	top := where{field: "the server metadata"}
	if err := s.openObject(&top); err != nil {
		return err
	}
	const (
		fName = 1 << iota
		fVersion
		fExtensions
	)
	var seen uint8
	for n := 0; ; {
		key, ok, err := s.nextMember(&n)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "name":
			if err := once(&seen, fName, &top, "name"); err != nil {
				return err
			}
			if sm.Name, err = s.readOwnedString(&where{field: `"name"`}); err != nil {
				return err
			}
		case "version":
			if err := once(&seen, fVersion, &top, "version"); err != nil {
				return err
			}
			if sm.Version, err = s.readOwnedString(&where{field: `"version"`}); err != nil {
				return err
			}
		case "extensions":
			if err := once(&seen, fExtensions, &top, "extensions"); err != nil {
				return err
			}
			if sm.Extensions, err = s.readStrings(&where{field: `"extensions"`}); err != nil {
				return err
			}
		default:
			if err := s.skipValue(); err != nil {
				return err
			}
		}
	}
	if err := s.end(); err != nil {
		return err
	}
	if seen&fName == 0 {
		return errorf(`the server metadata has no "name"`)
	}
	if seen&fVersion == 0 {
		return errorf(`the server metadata has no "version"`)
	}
	return nil
}

// readOwnedString reads a string and copies it.
func (s *scanner) readOwnedString(w *where) (string, error) {
	b, err := s.readStringValue(w)
	return string(b), err
}

// readStrings reads an array of strings.
func (s *scanner) readStrings(w *where) ([]string, error) {
	if err := s.openArray(w); err != nil {
		return nil, err
	}
	var ss []string
	for n := 0; ; {
		ok, err := s.nextElement(&n)
		if err != nil {
			return nil, err
		}
		if !ok {
			return ss, nil
		}
		str, err := s.readOwnedString(w)
		if err != nil {
			return nil, err
		}
		ss = append(ss, str)
	}
}

// readTensorMetadata reads an array of tensor metadata; kind is "input" or
// "output". Shapes may have negative (variable) dimensions.
func (s *scanner) readTensorMetadata(kind string) ([]TensorMetadata, error) {
	if err := s.openArray(&where{field: `"` + kind + `s"`}); err != nil {
		return nil, err
	}
	var ms []TensorMetadata
	for n := 0; ; {
		ok, err := s.nextElement(&n)
		if err != nil {
			return nil, err
		}
		if !ok {
			return ms, nil
		}
		if len(ms) == MaxTensors {
			return nil, errorf("the model metadata has more than %d %ss", MaxTensors, kind)
		}
		w := where{kind: kind, index: len(ms)}
		m, err := s.tensorMetadata(&w)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
}

// tensorMetadata reads one {"name","datatype","shape"} object.
func (s *scanner) tensorMetadata(w *where) (TensorMetadata, error) {
	var m TensorMetadata
	if err := s.openObject(w); err != nil {
		return m, err
	}
	const (
		fName = 1 << iota
		fType
		fShape
	)
	var seen uint8
	for n := 0; ; {
		key, ok, err := s.nextMember(&n)
		if err != nil {
			return m, err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "name":
			if err := once(&seen, fName, w, "name"); err != nil {
				return m, err
			}
			w.field = `"name"`
			if m.Name, err = s.readOwnedString(w); err != nil {
				return m, err
			}
			w.name = m.Name
		case "datatype":
			if err := once(&seen, fType, w, "datatype"); err != nil {
				return m, err
			}
			w.field = `"datatype"`
			b, err := s.readStringValue(w)
			if err != nil {
				return m, err
			}
			if m.Datatype = lookupDataType(b); m.Datatype == InvalidType {
				return m, errorf("%s: unknown datatype %q; use one of %s", w.tensor(), b, typeList)
			}
		case "shape":
			if err := once(&seen, fShape, w, "shape"); err != nil {
				return m, err
			}
			w.field = `"shape"`
			if err := s.openArray(w); err != nil {
				return m, err
			}
			m.Shape = []int64{}
			for k := 0; ; {
				ok, err := s.nextElement(&k)
				if err != nil {
					return m, err
				}
				if !ok {
					break
				}
				if len(m.Shape) == MaxRank {
					return m, errorf("%s has more than %d dimensions", w.String(), MaxRank)
				}
				d, err := s.readInt(w, math.MinInt64, math.MaxInt64)
				if err != nil {
					return m, err
				}
				m.Shape = append(m.Shape, d)
			}
		default:
			if err := s.skipValue(); err != nil {
				return m, err
			}
		}
		w.field = ""
	}
	switch {
	case seen&fName == 0:
		return m, errorf(`%s has no "name"`, w.tensor())
	case seen&fType == 0:
		return m, errorf(`%s has no "datatype"`, w.tensor())
	case seen&fShape == 0:
		return m, errorf(`%s has no "shape"`, w.tensor())
	}
	return m, nil
}
