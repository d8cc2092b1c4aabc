package oip

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// SharedMemoryStatus describes a registered system shared memory region,
// as GET /v2/systemsharedmemory/status and SystemSharedMemoryStatus do.
type SharedMemoryStatus struct {
	Name     string `json:"name"`
	Key      string `json:"key"`
	Offset   int64  `json:"offset"`
	ByteSize int64  `json:"byte_size"`
}

// DecodeSharedMemoryRequest decodes a SystemSharedMemoryRegisterRequest
// (name = 1, key = 2, offset = 3, byte_size = 4); the status and
// unregister requests are its first field alone. The strings must be
// UTF-8, as protobuf strings are.
func DecodeSharedMemoryRequest(b []byte, msg string) (r SharedMemoryStatus, err error) {
	var offset, size uint64
	err = eachField(b, msg, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case 1, 2:
			if typ != protowire.BytesType {
				return errorf("%s field %d has wire type %d; the protocol's is length-delimited", msg, num, typ)
			}
			if !utf8.Valid(v) {
				return errorf("%s field %d is not valid UTF-8 (a protobuf string must be)", msg, num)
			}
			if num == 1 {
				r.Name = string(v)
			} else {
				r.Key = string(v)
			}
		case 3, 4:
			if typ != protowire.VarintType {
				return errorf("%s field %d has wire type %d; the protocol's is varint", msg, num, typ)
			}
			if num == 3 {
				offset = x
			} else {
				size = x
			}
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	if offset > 1<<62 || size > 1<<62 {
		return r, errorf("%s: offset %d and byte_size %d are beyond any shared memory object", msg, offset, size)
	}
	r.Offset, r.ByteSize = int64(offset), int64(size)
	return r, nil
}

// AppendSharedMemoryStatusResponse appends regions as a
// SystemSharedMemoryStatusResponse: its regions map (1) by name, each a
// RegionStatus (name 1, key 2, offset 3, byte_size 4).
func AppendSharedMemoryStatusResponse(dst []byte, regions []SharedMemoryStatus) []byte {
	for _, r := range regions {
		dst = appendMessage(dst, 1, func(dst []byte) []byte {
			dst = appendPBString(dst, fMapKey, r.Name)
			return appendMessage(dst, fMapValue, func(dst []byte) []byte {
				dst = appendPBString(dst, 1, r.Name)
				dst = appendPBString(dst, 2, r.Key)
				if r.Offset != 0 {
					dst = protowire.AppendTag(dst, 3, protowire.VarintType)
					dst = protowire.AppendVarint(dst, uint64(r.Offset))
				}
				if r.ByteSize != 0 {
					dst = protowire.AppendTag(dst, 4, protowire.VarintType)
					dst = protowire.AppendVarint(dst, uint64(r.ByteSize))
				}
				return dst
			})
		})
	}
	return dst
}
