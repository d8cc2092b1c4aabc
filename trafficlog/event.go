package trafficlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"strconv"
	"time"

	"github.com/infergate/infergate/oip"
)

// Kind says what an Event records.
type Kind uint8

// The kinds of events.
const (
	// Prediction is a request a model answered: its inputs and the
	// outputs the client got.
	Prediction Kind = 1
	// Feedback is an outcome a client reported for an earlier prediction,
	// by its ID: a label, a reward, or both.
	Feedback Kind = 2
	// Shadow is what a shadow version answered to a copy of a logged
	// prediction, which no client saw: its outputs, under the ID of the
	// prediction it copied (whose record holds the inputs), and the
	// shadow's version. Outputs only: Inputs are empty.
	Shadow Kind = 3
)

// numKinds is how many kinds there are: 1 to numKinds.
const numKinds = 3

// known reports whether k is a kind this release reads.
func (k Kind) known() bool { return k >= 1 && k <= numKinds }

func (k Kind) String() string {
	switch k {
	case Prediction:
		return "prediction"
	case Feedback:
		return "feedback"
	case Shadow:
		return "shadow"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one record of the log.
type Event struct {
	Kind Kind
	Time time.Time
	// ID names the prediction: the request's id, or the one the gateway
	// gave its response. A Feedback event names the prediction it is for.
	ID    string
	Model string
	// Version is the version that answered (0 when a Feedback event does
	// not know it).
	Version int64
	// Arm is the experiment arm that answered, and Unit the X-Unit-Id it
	// was assigned by; both empty outside experiments.
	Arm, Unit string

	// Inputs and Outputs are a Prediction's tensors. A decoded Event's
	// tensors share the record's bytes.
	Inputs, Outputs []oip.Tensor

	// Label and Reward are a Feedback event's outcome; HasLabel and
	// HasReward say which it carries.
	Label, Reward       float64
	HasLabel, HasReward bool
}

// Record framing: the payload's length and CRC-32C (Castagnoli), little
// endian, then the payload.
const frameLen = 8

// formatVersion is the first byte of every payload.
const formatVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendRecord appends e's framed record to dst.
func AppendRecord(dst []byte, e *Event) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameLen)...)
	dst = append(dst, formatVersion, byte(e.Kind))
	dst = binary.AppendVarint(dst, e.Time.UnixNano())
	dst = appendString(dst, e.ID)
	dst = appendString(dst, e.Model)
	dst = binary.AppendVarint(dst, e.Version)
	dst = appendString(dst, e.Arm)
	dst = appendString(dst, e.Unit)
	switch e.Kind {
	case Prediction, Shadow:
		dst = appendTensors(dst, e.Inputs)
		dst = appendTensors(dst, e.Outputs)
	case Feedback:
		var flags byte
		if e.HasLabel {
			flags |= 1
		}
		if e.HasReward {
			flags |= 2
		}
		dst = append(dst, flags)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.Label))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.Reward))
	}
	payload := dst[start+frameLen:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTensors(dst []byte, ts []oip.Tensor) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ts)))
	for i := range ts {
		t := &ts[i]
		dst = appendString(dst, t.Name)
		dst = append(dst, byte(t.Datatype))
		dst = binary.AppendUvarint(dst, uint64(len(t.Shape)))
		for _, d := range t.Shape {
			dst = binary.AppendVarint(dst, d)
		}
		dst = binary.AppendUvarint(dst, uint64(len(t.Data)))
		dst = append(dst, t.Data...)
	}
	return dst
}

// maxTensors and maxDims bound what a damaged record can make Decode
// allocate before it finds the damage.
const (
	maxTensors = 1 << 10
	maxDims    = 64
)

// Decode decodes the framed record at the start of b into e and returns
// its length. Decoded strings are copies; tensor data shares b. A record
// that is cut short, fails its checksum or does not parse gives an error
// wrapping ErrCorrupt.
func Decode(b []byte, e *Event) (int, error) {
	if len(b) < frameLen {
		return 0, fmt.Errorf("%w: %d bytes, shorter than a record's frame", ErrCorrupt, len(b))
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n > len(b)-frameLen {
		return 0, fmt.Errorf("%w: the record says %d bytes, %d follow", ErrCorrupt, n, len(b)-frameLen)
	}
	payload := b[frameLen : frameLen+n]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	d := decoder{b: payload}
	if v := d.byte(); v != formatVersion && d.err == nil {
		return 0, fmt.Errorf("%w: format %d; this release reads format %d", ErrCorrupt, v, formatVersion)
	}
	*e = Event{Kind: Kind(d.byte())}
	e.Time = time.Unix(0, d.varint())
	e.ID = d.string()
	e.Model = d.string()
	e.Version = d.varint()
	e.Arm = d.string()
	e.Unit = d.string()
	switch e.Kind {
	case Prediction, Shadow:
		e.Inputs = d.tensors()
		e.Outputs = d.tensors()
	case Feedback:
		flags := d.byte()
		e.HasLabel, e.HasReward = flags&1 != 0, flags&2 != 0
		e.Label = math.Float64frombits(d.uint64())
		e.Reward = math.Float64frombits(d.uint64())
	default:
		if d.err == nil {
			d.err = fmt.Errorf("unknown event kind %d", e.Kind)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the event", len(d.b))
	}
	if d.err != nil {
		return 0, fmt.Errorf("%w: %v", ErrCorrupt, d.err)
	}
	return frameLen + n, nil
}

// decoder reads a payload; the first error sticks and later reads give
// zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("cut short in %s", what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("a byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail("a number")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("an integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("an integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("a byte string")
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) tensors() []oip.Tensor {
	n := d.uvarint()
	if n > maxTensors || n > uint64(len(d.b)) {
		if d.err == nil {
			d.err = fmt.Errorf("%d tensors", n)
		}
		return nil
	}
	var ts []oip.Tensor
	if n > 0 {
		ts = make([]oip.Tensor, n)
	}
	for i := range ts {
		t := &ts[i]
		t.Name = d.string()
		t.Datatype = oip.DataType(d.byte())
		if _, ok := oip.ParseDataType(t.Datatype.String()); !ok && d.err == nil {
			d.err = fmt.Errorf("tensor %q: data type %d", t.Name, t.Datatype)
		}
		nd := d.uvarint()
		if nd > maxDims {
			if d.err == nil {
				d.err = fmt.Errorf("tensor %q: %d dimensions", t.Name, nd)
			}
			return nil
		}
		if nd > 0 {
			t.Shape = make([]int64, nd)
		}
		for j := range t.Shape {
			t.Shape[j] = d.varint()
		}
		t.Data = d.bytes()
	}
	if d.err != nil {
		return nil
	}
	return ts
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
