package trafficlog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/infergate/infergate/internal/logging"
)

// Read calls fn with each record from position from on, in order, with
// the record's position and its framed bytes (valid only during the call;
// Decode decodes them), until fn returns false, the readable end, or the
// records passed reach maxBytes (the first is passed whatever its size).
// It returns the position after the last record passed: where the next
// Read goes on. from must be the position of a record, or the end: one
// before the first record (deleted to keep the log in its budget) or
// after the end gives a *PositionError, and one inside a record (one the
// records before it in its segment do not lead to) an error wrapping
// ErrNotRecord. A segment file removed by hand, with older ones kept, is
// a gap: reading goes on at the next segment. A record damaged on disk gives an error wrapping
// ErrCorrupt, with its position, after the whole records before it were
// passed; the error names where the next segment begins, the way past
// it, and damage in the segment being written makes the writer start the
// next.
func (l *Log) Read(from int64, maxBytes int, fn func(pos int64, rec []byte) bool) (int64, error) {
	l.mu.Lock()
	segs := append([]segment(nil), l.segs...)
	end := l.synced
	l.mu.Unlock()
	if from < segs[0].base || from > end {
		return from, &PositionError{Position: from, First: segs[0].base, Next: end}
	}
	pos := from
	passed := 0
	var buf []byte
	for i := len(segs) - 1; i >= 0; i-- {
		if segs[i].base > pos {
			continue
		}
		// segs[i] holds pos; read it and the ones after it.
		for ; i < len(segs) && pos < end; i++ {
			s := segs[i]
			if pos < s.base {
				pos = s.base // a gap: files removed by hand
			}
			limit := s.base + s.size
			if i == len(segs)-1 || limit > end {
				limit = end
			}
			if pos >= limit {
				continue
			}
			f, err := os.Open(filepath.Join(l.cfg.Dir, segName(s.base)))
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					// Deleted by retention since the snapshot, or by hand.
					l.forgetMissing(s.base)
					st := l.Stats()
					if pos >= st.First && i < len(segs)-1 {
						// Removed by hand with older segments kept: a
						// gap, which the next segment goes on after.
						continue
					}
					return pos, &PositionError{Position: pos, First: st.First, Next: st.Next}
				}
				return pos, err
			}
			r := bufio.NewReaderSize(io.NewSectionReader(f, pos-s.base, limit-pos), 256<<10)
			for pos < limit {
				rec, err := readRecord(r, buf, limit-pos)
				if err != nil {
					f.Close()
					detail := ""
					switch {
					case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
						detail = "it runs past the end of segment " + segName(s.base)
					case errors.Is(err, ErrCorrupt):
						detail = strings.TrimPrefix(err.Error(), ErrCorrupt.Error()+": ")
					default:
						return pos, err
					}
					if pos == from && !l.recordAt(s, pos) {
						// Not a record's position, as far as the records
						// before it in the segment tell: no damage to
						// report, and no reason to start a new segment.
						return pos, fmt.Errorf("%w %d (%s): read from a record's position, or from the first or next position a read gives", ErrNotRecord, pos, detail)
					}
					skip := ""
					if next, ok := segmentAfter(segs, pos, end); ok {
						skip = fmt.Sprintf("; read from position %d, where the next segment begins, to skip the rest of %s", next, segName(s.base))
					} else if i == len(segs)-1 {
						// Damage in the segment written now: the writer
						// starts the next one, the way past it.
						l.rotatePast(s.base)
						skip = "; read from there again in a moment: the log is starting a new segment past it, and the answer will say where it begins"
					}
					if pos == from {
						return pos, fmt.Errorf("%w at position %d (%s)%s", ErrCorrupt, pos, detail, skip)
					}
					return pos, fmt.Errorf("%w at position %d, after a whole one (%s)%s", ErrCorrupt, pos, detail, skip)
				}
				buf = rec[:0]
				if passed > 0 && passed+len(rec) > maxBytes {
					f.Close()
					return pos, nil
				}
				if !fn(pos, rec) {
					f.Close()
					return pos + int64(len(rec)), nil
				}
				passed += len(rec)
				pos += int64(len(rec))
			}
			f.Close()
		}
		return pos, nil
	}
	return pos, nil
}

// forgetMissing drops from the list the sealed segments up to base whose
// files are gone (removed by hand while the log runs), so that Stats and
// reads move on to the oldest segment still there.
func (l *Log) forgetMissing(base int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := l.segs[:0:0]
	for i, s := range l.segs {
		if i < len(l.segs)-1 && s.base <= base {
			if _, err := os.Stat(filepath.Join(l.cfg.Dir, segName(s.base))); errors.Is(err, os.ErrNotExist) {
				l.cfg.Logf(logging.Warning+"traffic log: segment %s is gone from %s; reads go on from the next one", segName(s.base), l.cfg.Dir)
				continue
			}
		}
		keep = append(keep, s)
	}
	l.segs = keep
}

// SegmentAfter returns where the segment after the one holding position
// pos begins, the way past a damaged record there; ok is false when that
// segment is the last (the one written now) or pos is not in the log.
func (l *Log) SegmentAfter(pos int64) (next int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return segmentAfter(l.segs, pos, l.synced)
}

// segmentAfter is SegmentAfter over segs, of a log whose readable end is
// end: the way past a damaged record at pos.
func segmentAfter(segs []segment, pos, end int64) (next int64, ok bool) {
	for i, s := range segs {
		if s.base > pos {
			return s.base, i > 0 && s.base <= end
		}
	}
	return 0, false
}

// rotatePast asks the writer to start a new segment if the one at base is
// still the one it writes: a read found it damaged, and the next segment
// is the way past the damage.
func (l *Log) rotatePast(base int64) {
	l.rotateBase.Store(base)
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// recordAt reports whether a record of segment s starts at position pos,
// walking the records' frames from the segment's start: a position that
// only the frames before it lead to is a record's, whatever its own bytes
// hold now. It is false where a frame before pos is damaged, or the
// segment cannot be read. It reads the segment up to pos: only a read
// that fails at the position it was asked for pays it.
func (l *Log) recordAt(s segment, pos int64) bool {
	f, err := os.Open(filepath.Join(l.cfg.Dir, segName(s.base)))
	if err != nil {
		return false
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, pos-s.base), 256<<10)
	off := s.base
	var hdr [frameLen]byte
	for off < pos {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return false
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:]))
		if n < 2 || n > int64(l.cfg.MaxRecordBytes) {
			return false
		}
		off += frameLen + n
		if off > pos {
			return false
		}
		if _, err := r.Discard(int(n)); err != nil {
			return false
		}
	}
	return off == pos
}
