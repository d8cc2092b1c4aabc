package trafficlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// tailScan bounds the bytes TailPosition looks through for a record's
// start; a log whose records are larger than it begins its tail at the
// next segment instead.
const tailScan = 1 << 20

// TailPosition returns where a Read of about the last maxBytes bytes of
// the readable log begins: the first record at or after end-maxBytes (the
// first record when the log holds less). Positions inside a segment are
// not indexed, so it finds that record by its frame: a length the segment
// holds, a payload that starts with the format and a known kind and
// passes its checksum, and after it another such frame or the segment's
// end (a false match needs two checksums to agree by chance). It reads
// tailScan bytes, and reads and checksums at most two records and twice
// tailScan more (firstFrame), to find it; where none is found there
// (huge records, damage, or a tensor's bytes full of headers that look
// like frames) the tail begins at the next segment, or is empty (the
// end). A client can put whole frames in a tensor's bytes: a tail found
// inside them holds those, and a Read from it then stops with
// ErrNotRecord or ErrCorrupt at the end of the record holding them, as
// at damage.
// Safe for concurrent use with the writer.
func (l *Log) TailPosition(maxBytes int64) (int64, error) {
	l.mu.Lock()
	segs := append([]segment(nil), l.segs...)
	end := l.synced
	l.mu.Unlock()
	target := end - maxBytes
	if maxBytes < 0 || target <= segs[0].base {
		return segs[0].base, nil
	}
	i := len(segs) - 1
	for segs[i].base > target {
		i--
	}
	s := segs[i]
	if target <= s.base {
		return s.base, nil
	}
	limit := s.base + s.size
	if i == len(segs)-1 || limit > end {
		limit = end
	}
	next := end
	if i < len(segs)-1 && segs[i+1].base < end {
		next = segs[i+1].base
	}
	if target >= limit {
		return next, nil // in a gap, or past the end of a sealed segment
	}
	f, err := os.Open(filepath.Join(l.cfg.Dir, segName(s.base)))
	if errors.Is(err, os.ErrNotExist) {
		return next, nil // deleted by retention since the snapshot
	}
	if err != nil {
		return 0, fmt.Errorf("cannot open traffic log segment %s for its tail: %w", segName(s.base), err)
	}
	defer f.Close()
	size := limit - s.base // the readable bytes of the segment
	off := target - s.base
	w := make([]byte, min(size-off, tailScan))
	if _, err := f.ReadAt(w, off); err != nil && err != io.EOF {
		return 0, fmt.Errorf("cannot read traffic log segment %s for its tail: %w", segName(s.base), err)
	}
	if p, ok := firstFrame(f, w, off, size, l.cfg.MaxRecordBytes); ok {
		return s.base + off + p, nil
	}
	return next, nil
}

// firstFrame returns the offset in w of the first whole record there
// that is followed by another or by the end of the segment; w holds the
// bytes of segment f (of size readable bytes) from off on, as far as they
// were read.
// Each header that looks like a frame costs a checksum of the record it
// claims, read from f where it goes past w; a client can put such headers
// every few bytes of a tensor's data, so the payload bytes it checksums
// are bounded by two records and twice w (a true frame and the one after
// it, and the rare look-alike of random data): past that it gives up, as
// at damage.
func firstFrame(f io.ReaderAt, w []byte, off, size int64, maxRecord int) (int64, bool) {
	var rec []byte
	budget := 2*int64(maxRecord) + 2*int64(len(w))
	for p := range len(w) {
		n, ok := frameAt(f, w, off, int64(p), size, maxRecord, &rec, &budget)
		if budget < 0 {
			return 0, false
		}
		if !ok {
			continue
		}
		if after := off + int64(p) + n; after == size {
			return int64(p), true
		} else if _, ok := frameAt(f, w, off, after-off, size, maxRecord, &rec, &budget); ok {
			return int64(p), true
		}
	}
	return 0, false
}

// frameAt reports whether a whole record with a good checksum starts at
// offset base+p of segment file f (of size bytes), and its length; w holds
// the file's bytes from base on, as far as they were read, and rec is
// scratch space. It takes the payload's length from budget, and checks
// nothing once that would leave budget below 0 (it is set to -1 then).
func frameAt(f io.ReaderAt, w []byte, base, p, size int64, maxRecord int, rec *[]byte, budget *int64) (int64, bool) {
	var hdr [frameLen + 2]byte
	if p+int64(len(hdr)) <= int64(len(w)) {
		copy(hdr[:], w[p:])
	} else if base+p+int64(len(hdr)) > size {
		return 0, false
	} else if _, err := f.ReadAt(hdr[:], base+p); err != nil {
		return 0, false
	}
	n := int64(binary.LittleEndian.Uint32(hdr[:]))
	if n < 2 || n > int64(maxRecord) || base+p+frameLen+n > size {
		return 0, false
	}
	if hdr[frameLen] != formatVersion || !Kind(hdr[frameLen+1]).known() {
		return 0, false
	}
	if *budget -= n; *budget < 0 {
		*budget = -1
		return 0, false
	}
	var payload []byte
	if p+frameLen+n <= int64(len(w)) {
		payload = w[p+frameLen : p+frameLen+n]
	} else {
		if int64(cap(*rec)) < n {
			*rec = make([]byte, n)
		}
		payload = (*rec)[:n]
		if _, err := f.ReadAt(payload, base+p+frameLen); err != nil {
			return 0, false
		}
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return 0, false
	}
	return frameLen + n, true
}
