package trafficlog

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/infergate/infergate/internal/diskfree"
	"github.com/infergate/infergate/internal/durable"
	"github.com/infergate/infergate/internal/logging"
	"github.com/infergate/infergate/oip"
)

// Config configures a Log. Zero fields take DefaultConfig's values.
type Config struct {
	// Dir holds the segment files; it is created if missing.
	Dir string
	// SegmentBytes is the size at which the writer starts a new segment.
	SegmentBytes int64
	// MaxBytes is the log's byte budget: when a new segment starts, the
	// oldest are deleted until the others and a full new one fit in it.
	MaxBytes int64
	// MaxRecordBytes bounds one encoded event; Append refuses larger ones.
	MaxRecordBytes int
	// QueueBytes bounds the encoded events waiting for the writer: past
	// it Append drops and AppendSync refuses.
	QueueBytes int64
	// SyncInterval is how often records added by Append are fsynced (and
	// so become readable). AppendSync does not wait for it.
	SyncInterval time.Duration
	// SyncTimeout bounds AppendSync's wait for the disk: a disk that hangs
	// makes it fail with ErrSyncTimeout rather than hold its caller.
	SyncTimeout time.Duration
	// Disk, when set, keeps its minimum free on the log's filesystem:
	// an event that would eat into it is dropped (Append) or refused
	// (AppendSync) with a *diskfree.LowError, and counted. Nil: the log
	// writes until the disk is full.
	Disk *diskfree.Guard
	// Metrics receives the log's series; nil makes a set of its own.
	Metrics *metrics.Set
	// Logf logs what an operator should know (a torn record cut off, a
	// write error); nil means log.Printf.
	Logf func(format string, args ...any)
}

// DefaultConfig returns the defaults: 64 MiB segments, a 1 GiB budget,
// 4 MiB records, a 64 MiB queue, a sync a second, 10 s for AppendSync.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:   64 << 20,
		MaxBytes:       1 << 30,
		MaxRecordBytes: 4 << 20,
		QueueBytes:     64 << 20,
		SyncInterval:   time.Second,
		SyncTimeout:    10 * time.Second,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.MaxRecordBytes <= 0 {
		c.MaxRecordBytes = d.MaxRecordBytes
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = d.QueueBytes
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = d.SyncInterval
	}
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = d.SyncTimeout
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
	if c.Logf == nil {
		c.Logf = log.Printf
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	c.fill()
	switch {
	case c.Dir == "":
		return errors.New("the traffic log needs a directory")
	case c.SegmentBytes < 1<<16:
		return fmt.Errorf("traffic log segments of %d bytes are too small; give at least 64 KiB", c.SegmentBytes)
	case c.MaxBytes < 2*c.SegmentBytes:
		return fmt.Errorf("a traffic log budget of %d bytes holds fewer than two segments of %d bytes; raise the budget or shrink the segments", c.MaxBytes, c.SegmentBytes)
	case int64(c.MaxRecordBytes) > c.SegmentBytes:
		return fmt.Errorf("traffic log records of up to %d bytes do not fit segments of %d bytes", c.MaxRecordBytes, c.SegmentBytes)
	case int64(c.MaxRecordBytes) > c.QueueBytes:
		return fmt.Errorf("traffic log records of up to %d bytes do not fit its queue of %d bytes", c.MaxRecordBytes, c.QueueBytes)
	}
	return nil
}

// queueSlots bounds the number of events waiting for the writer, beside
// Config.QueueBytes.
const queueSlots = 4096

// syncBuckets are the bounds, in seconds, of the fsync durations'
// histogram: from a fast SSD's tenth of a millisecond to a disk that
// stalls for seconds.
var syncBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// segment is one file of the log.
type segment struct {
	base int64 // the position of its first record: its name
	size int64 // bytes in it: final once sealed; the last one's grows
}

// pending is an encoded record on its way to the writer; done, for
// AppendSync, receives the outcome once it is on disk.
type pending struct {
	rec  []byte
	done chan error
}

// Log is a node's traffic log. Append, AppendSync, Read and Stats are safe
// for concurrent use; one goroutine of its own writes the files.
type Log struct {
	cfg Config
	// id is the log's identity (ID); set by Open.
	id string
	// unlock releases the directory's lock (lockDir) when the writer stops.
	unlock func()

	queue  chan *pending
	queued atomic.Int64 // bytes in queue
	stop   chan struct{}
	done   chan struct{}
	closed atomic.Bool
	// pushing counts the appends between their check of closed and their
	// push: Close waits for them, so that the writer sees every record an
	// append queued.
	pushing atomic.Int64
	once    sync.Once

	// mu protects segs and synced, which readers snapshot.
	mu   sync.Mutex
	segs []segment
	// synced is the end of the fsynced records: what readers may read.
	synced int64

	// Only the writer goroutine uses these.
	f          *os.File
	w          *bufio.Writer
	activeBase int64 // the base of the segment f is
	end        int64 // the position after the last record written
	dirty      bool  // written since the last sync
	// waiters are the AppendSync records written since the last sync, and
	// unsynced counts all those records by kind (index kind-1).
	waiters  []*pending
	unsynced [numKinds]int
	// loggedErr is when a write error was last logged (at most one line a
	// minute), unloggedErrs how many came since.
	loggedErr    time.Time
	unloggedErrs int
	// loggedLow is when an event dropped for disk space was last logged
	// (UnixNano; at most one line a minute, by whoever moves it on).
	loggedLow atomic.Int64

	// rotateBase is the base of a segment a read found damaged while it
	// was the one written (-1: none), and kick wakes the writer to start
	// the next one, the way past the damage.
	rotateBase atomic.Int64
	kick       chan struct{}

	// beforeBatch, when set (by tests, before the first Append), runs on
	// the writer before each batch.
	beforeBatch func()

	c            *Counters
	syncDuration *metrics.PrometheusHistogram
}

// segName is the file name of the segment whose first record is at base.
func segName(base int64) string { return fmt.Sprintf("%020d.seg", base) }

// Open opens the log in cfg.Dir, creating it if needed, cuts off a record
// a crash tore at the end of the last segment, and starts the writer. The
// directory is locked until Close: another Log on it, in this process or
// another, fails with an error wrapping ErrLocked.
func Open(cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	if err := durable.MakeDirs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("cannot create the traffic log directory: %w", err)
	}
	unlock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	l := &Log{cfg: cfg, unlock: unlock, queue: make(chan *pending, queueSlots), stop: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1)}
	l.rotateBase.Store(-1)
	if err := l.recover(); err != nil {
		unlock()
		return nil, err
	}
	set := cfg.Metrics
	l.c = NewCounters(set)
	l.syncDuration = set.GetOrCreatePrometheusHistogramExt(`infergate_traffic_sync_duration_seconds`, syncBuckets)
	set.GetOrCreateGauge(`infergate_traffic_log_bytes`, func() float64 { return float64(l.Stats().Bytes) })
	set.GetOrCreateGauge(`infergate_traffic_queued_bytes`, func() float64 { return float64(l.queued.Load()) })
	go l.run()
	return l, nil
}

// recover lists the segments, checks the last one record by record, and
// opens it for writing: a torn end (a crash in the middle of a write) is
// cut off, and a damaged record with bytes after it leaves the segment as
// it is and the log going on in a new one past its end.
func (l *Log) recover() error {
	entries, err := os.ReadDir(l.cfg.Dir)
	if err != nil {
		return fmt.Errorf("cannot list the traffic log directory: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || e.IsDir() {
			continue
		}
		base, err := strconv.ParseInt(name, 10, 64)
		if err != nil || base < 0 || segName(base) != e.Name() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("cannot read traffic log segment %s: %w", e.Name(), err)
		}
		l.segs = append(l.segs, segment{base: base, size: info.Size()})
	}
	slices.SortFunc(l.segs, func(a, b segment) int { return cmp.Compare(a.base, b.base) })
	// A directory without segments holds a new log, whatever identity
	// file was left in it: its positions start over.
	if l.id, err = loadID(l.cfg.Dir, len(l.segs) == 0, l.cfg.Logf); err != nil {
		return err
	}
	if len(l.segs) == 0 {
		l.segs = []segment{{}}
	}
	last := &l.segs[len(l.segs)-1]
	path := filepath.Join(l.cfg.Dir, segName(last.base))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open traffic log segment: %w", err)
	}
	valid, damaged, err := validPrefix(f, l.cfg.MaxRecordBytes)
	if err != nil {
		f.Close()
		return err
	}
	if valid < last.size {
		// Whatever is cut or kept, the log goes on in a new segment at the
		// old end: a position a reader was given (a record synced, then
		// damaged) never holds another record.
		end := last.base + last.size
		if damaged {
			// Synced records may follow the damage: the segment stays as
			// it is, sealed (reads stop at the damage and name the way
			// past it).
			l.cfg.Logf(logging.Error+"traffic log: %s is damaged %d bytes in (position %d), with %d bytes after the damage; it is kept as it is, and the log goes on in a new segment at position %d (reads stop at the damage, and skip to there)",
				path, valid, last.base+valid, last.size-valid, end)
		}
		// The new segment is on disk before the torn end is cut: a crash
		// between the two must not leave the cut segment last, where the
		// next start would append at the cut, a position a reader may
		// have been given (a synced record, damaged since, that looks
		// torn).
		next := filepath.Join(l.cfg.Dir, segName(end))
		nf, err := os.OpenFile(next, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			if err = nf.Sync(); err == nil {
				err = durable.SyncDir(l.cfg.Dir)
			}
			if err != nil {
				nf.Close()
			}
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("cannot start a traffic log segment: %w", err)
		}
		if !damaged {
			l.cfg.Logf(logging.Warning+"traffic log: cut off the last %d bytes of %s, a record a crash left unfinished; the log goes on in a new segment at position %d", last.size-valid, path, end)
			err := f.Truncate(valid)
			if err == nil {
				err = f.Sync()
			}
			if err != nil {
				f.Close()
				nf.Close()
				return fmt.Errorf("cannot cut the torn end off %s: %w", path, err)
			}
			last.size = valid
		}
		f.Close()
		l.segs = append(l.segs, segment{base: end})
		last = &l.segs[len(l.segs)-1]
		f, path, valid = nf, next, 0
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("cannot sync %s: %w", path, err)
	}
	if err := durable.SyncDir(l.cfg.Dir); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Seek(valid, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	last.size = valid
	l.activeBase = last.base
	l.f = f
	l.w = bufio.NewWriterSize(f, 1<<20)
	l.end = last.base + valid
	l.synced = l.end
	// The budget may be smaller than when the log was written (lowered
	// to free the disk): it holds from now, not from the next segment,
	// which a disk too full to write would never start.
	l.retain()
	return nil
}

// validPrefix returns the length of the whole, intact records at the start
// of f, and whether what follows them is damage rather than a torn end:
// damage is a bad record with a good one somewhere after it (records
// were synced past it), a torn end one with none (a crash in the middle
// of a write, or zeros a crash left at the end of the file).
func validPrefix(f *os.File, maxRecord int) (valid int64, damaged bool, err error) {
	info, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var off int64
	var buf []byte
	for {
		// A whole frame with a good checksum is a record this log wrote.
		rec, err := readRecord(r, buf, info.Size()-off)
		if err == io.EOF {
			return off, false, nil
		}
		if errors.Is(err, ErrCorrupt) || errors.Is(err, io.ErrUnexpectedEOF) {
			found, err := recordAfter(io.NewSectionReader(f, off, info.Size()-off), info.Size()-off, maxRecord)
			if err != nil {
				return 0, false, fmt.Errorf("cannot read traffic log segment %s: %w", f.Name(), err)
			}
			return off, found, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("cannot read traffic log segment %s: %w", f.Name(), err)
		}
		buf = rec[:0]
		off += int64(len(rec))
	}
}

// recordAfter reports whether a whole record of at most maxRecord bytes,
// with a good checksum and a known format and kind, starts anywhere in
// the size bytes of r after the first. Random bytes pass the cheap checks
// that come before the checksum about once in 20 million offsets, so a
// scan costs about a read of r; it holds a window of a MiB and a record
// in memory.
func recordAfter(r io.ReaderAt, size int64, maxRecord int) (bool, error) {
	const step = 1 << 20
	window := make([]byte, step+frameLen+maxRecord)
	for start := int64(0); start < size; start += step {
		n, err := r.ReadAt(window[:min(int64(len(window)), size-start)], start)
		if err != nil && err != io.EOF {
			return false, err
		}
		buf := window[:n]
		for i := 0; i < step && i+frameLen+2 <= len(buf); i++ {
			if start == 0 && i == 0 {
				continue // the bad record itself
			}
			m := int(binary.LittleEndian.Uint32(buf[i:]))
			if m < 2 || m > maxRecord || m > len(buf)-i-frameLen {
				continue
			}
			p := buf[i+frameLen : i+frameLen+m]
			if p[0] != formatVersion || !Kind(p[1]).known() {
				continue
			}
			if crc32.Checksum(p, castagnoli) == binary.LittleEndian.Uint32(buf[i+4:]) {
				return true, nil
			}
		}
	}
	return false, nil
}

// readRecord reads one framed record, at most left bytes, from r into
// buf's storage and checks its checksum. It returns io.EOF at a clean end,
// io.ErrUnexpectedEOF for a torn one, and an error wrapping ErrCorrupt for
// a damaged one.
func readRecord(r *bufio.Reader, buf []byte, left int64) ([]byte, error) {
	hdr, err := r.Peek(frameLen)
	if err != nil {
		if err == io.EOF && len(hdr) == 0 {
			return nil, io.EOF
		}
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int(uint32(hdr[0]) | uint32(hdr[1])<<8 | uint32(hdr[2])<<16 | uint32(hdr[3])<<24)
	if n < 2 {
		// Every payload starts with the format and the kind: eight zero
		// bytes (inside a record's data) have a good checksum, and are
		// no record.
		return nil, fmt.Errorf("%w: a record of %d bytes", ErrCorrupt, n)
	}
	if int64(n) > left-frameLen {
		// Torn, or damaged: a length that claims more than is there must
		// not make a reader allocate it.
		return nil, io.ErrUnexpectedEOF
	}
	buf = slices.Grow(buf[:0], frameLen+n)[:frameLen+n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if crc32.Checksum(buf[frameLen:], castagnoli) != binary.LittleEndian.Uint32(buf[4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if k := Kind(buf[frameLen+1]); buf[frameLen] != formatVersion || !k.known() {
		return nil, fmt.Errorf("%w: format %d, kind %d", ErrCorrupt, buf[frameLen], k)
	}
	return buf, nil
}

// Append hands e to the writer without waiting: it is on disk within
// Config.SyncInterval. It returns ErrFull (the writer lags), ErrTooLarge
// or ErrClosed, each counted, when e is dropped. e is encoded before
// Append returns: the caller keeps its tensors.
func (l *Log) Append(e *Event) error {
	if !l.enter() {
		l.c.DropClosed.Inc()
		return ErrClosed
	}
	defer l.pushing.Add(-1)
	if err := Check(e); err != nil {
		l.c.DropLarge.Inc()
		return err
	}
	_, err := l.push(AppendRecord(nil, e), false)
	return err
}

// Check refuses an event of an unknown kind, or with more tensors or
// dimensions than Decode takes: a record must read back. Every Sink
// checks what it takes with it.
func Check(e *Event) error {
	if !e.Kind.known() {
		return fmt.Errorf("%w: %d", ErrUnknownKind, e.Kind)
	}
	for _, ts := range [][]oip.Tensor{e.Inputs, e.Outputs} {
		if len(ts) > maxTensors {
			return fmt.Errorf("%w: %d tensors, over %d", ErrTooLarge, len(ts), maxTensors)
		}
		for i := range ts {
			if len(ts[i].Shape) > maxDims {
				return fmt.Errorf("%w: tensor %q has %d dimensions, over %d", ErrTooLarge, ts[i].Name, len(ts[i].Shape), maxDims)
			}
		}
	}
	return nil
}

// AppendSync appends es, in order and all or none, and waits until they
// are fsynced. A crash during the write may leave the first of them on
// disk, whole records, without an answer to the caller: a client that
// sends them again then has those twice (the trainer keeps an id's
// latest outcome). It fails as Append does without waiting (ErrTooLarge when
// they encode to more than Config.MaxRecordBytes together), with the
// write's error, or with ErrSyncTimeout when the disk did not confirm
// them within Config.SyncTimeout (they may still be written).
func (l *Log) AppendSync(es ...*Event) error {
	var recs []byte
	for _, e := range es {
		if err := Check(e); err != nil {
			l.c.DropLarge.Add(len(es))
			return err
		}
		recs = AppendRecord(recs, e)
		if len(recs) > l.cfg.MaxRecordBytes {
			l.c.DropLarge.Add(len(es))
			return fmt.Errorf("%w: %d events take more than %d bytes together", ErrTooLarge, len(es), l.cfg.MaxRecordBytes)
		}
	}
	if !l.enter() {
		l.c.DropClosed.Add(len(es))
		return ErrClosed
	}
	p, err := l.push(recs, true)
	l.pushing.Add(-1)
	if err != nil {
		return err
	}
	timeout := time.NewTimer(l.cfg.SyncTimeout)
	defer timeout.Stop()
	select {
	case err := <-p.done:
		return err
	case <-timeout.C:
		return fmt.Errorf("%w: waited %s", ErrSyncTimeout, l.cfg.SyncTimeout)
	case <-l.done:
		// Closed: the writer answered p before it stopped, or never saw it.
		select {
		case err := <-p.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// push queues recs, one or more framed records written as one.
func (l *Log) push(recs []byte, wait bool) (*pending, error) {
	n := records(recs)
	if len(recs) > l.cfg.MaxRecordBytes {
		l.c.DropLarge.Add(n)
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrTooLarge, len(recs), l.cfg.MaxRecordBytes)
	}
	if err := l.cfg.Disk.Check(int64(len(recs))); err != nil {
		l.c.DropDiskLow.Add(n)
		now := time.Now().UnixNano()
		if last := l.loggedLow.Load(); now-last >= int64(time.Minute) && l.loggedLow.CompareAndSwap(last, now) {
			l.cfg.Logf(logging.Warning+"traffic log: dropping events until there is room: %v (the traffic log holds %d bytes of it, up to --traffic-max-bytes %d: lower that to keep it smaller)", err, l.Stats().Bytes, l.cfg.MaxBytes)
		}
		return nil, err
	}
	if l.queued.Add(int64(len(recs))) > l.cfg.QueueBytes {
		l.queued.Add(-int64(len(recs)))
		l.c.DropFull.Add(n)
		return nil, ErrFull
	}
	p := &pending{rec: recs}
	if wait {
		p.done = make(chan error, 1)
	}
	select {
	case l.queue <- p:
		return p, nil
	default:
		l.queued.Add(-int64(len(recs)))
		l.c.DropFull.Add(n)
		return nil, ErrFull
	}
}

// records counts the framed records in recs, which AppendRecord wrote.
func records(recs []byte) int {
	n := 0
	for off := 0; off+frameLen <= len(recs); n++ {
		off += frameLen + int(binary.LittleEndian.Uint32(recs[off:]))
	}
	return n
}

// enter starts an append: false once the log is closed. An append that
// entered ends with l.pushing.Add(-1) once it pushed (or gave up).
func (l *Log) enter() bool {
	l.pushing.Add(1)
	if l.closed.Load() {
		l.pushing.Add(-1)
		return false
	}
	return true
}

// Close stops the writer once it has written and fsynced what is queued,
// and closes the files. It is idempotent.
func (l *Log) Close() error {
	l.once.Do(func() {
		l.closed.Store(true)
		// Appends that passed the check push without blocking: wait for
		// them, so that what they queued is written below.
		for l.pushing.Load() > 0 {
			runtime.Gosched()
		}
		close(l.stop)
	})
	<-l.done
	return nil
}

// run is the writer goroutine.
func (l *Log) run() {
	defer close(l.done)
	t := time.NewTicker(l.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case p := <-l.queue:
			l.writeBatch(p)
			if len(l.waiters) > 0 {
				l.sync()
			}
		case <-t.C:
			if l.dirty {
				l.sync()
			}
		case <-l.kick:
			if l.rotateBase.Load() == l.activeBase && l.end > l.activeBase {
				if err := l.rotate(); err != nil {
					l.writeFailed(err)
				} else {
					l.cfg.Logf("traffic log: started a new segment at position %d, past the damage a read found in %s", l.activeBase, segName(l.rotateBase.Load()))
				}
			}
		case <-l.stop:
			// Appends after closed was set are refused, and Close waited
			// for those that passed the check before: write what is
			// queued.
			for {
				select {
				case p := <-l.queue:
					l.writeBatch(p)
					continue
				default:
				}
				break
			}
			l.sync()
			l.f.Close()
			l.unlock()
			return
		}
	}
}

// writeBatch writes p and whatever else is queued now (up to a bound) and
// flushes them to the file.
func (l *Log) writeBatch(p *pending) {
	if l.beforeBatch != nil {
		l.beforeBatch()
	}
	for i := 0; ; i++ {
		l.write(p)
		if i == 255 {
			break
		}
		select {
		case p = <-l.queue:
			continue
		default:
		}
		break
	}
	if err := l.w.Flush(); err != nil {
		l.writeFailed(err)
	}
}

// write appends one record to the active segment, starting a new one
// first when it is full.
func (l *Log) write(p *pending) {
	l.queued.Add(-int64(len(p.rec)))
	if l.end > l.activeBase && l.end-l.activeBase+int64(len(p.rec)) > l.cfg.SegmentBytes {
		if err := l.rotate(); err != nil {
			l.writeFailed(err)
			l.answer(p, err)
			return
		}
	}
	if _, err := l.w.Write(p.rec); err != nil {
		l.writeFailed(err)
		l.answer(p, err)
		return
	}
	l.end += int64(len(p.rec))
	l.dirty = true
	for off := 0; off+frameLen < len(p.rec); off += frameLen + int(binary.LittleEndian.Uint32(p.rec[off:])) {
		l.unsynced[p.rec[off+frameLen+1]-1]++ // a known kind: Append checks
	}
	if p.done != nil {
		l.waiters = append(l.waiters, p)
	}
}

// answer tells p's waiter, if it has one, that it failed with err; a
// record without one is counted dropped.
func (l *Log) answer(p *pending, err error) {
	if p.done != nil {
		p.done <- fmt.Errorf("cannot write the traffic log: %w", err)
	} else {
		l.c.DropWrite.Add(records(p.rec))
	}
}

// sync fsyncs the active segment, makes what it holds readable, counts
// it, and answers the waiters.
func (l *Log) sync() {
	if l.dirty {
		start := time.Now()
		err := l.w.Flush()
		if err == nil {
			err = l.f.Sync()
		}
		l.syncDuration.UpdateDuration(start)
		if err != nil {
			l.writeFailed(err) // answers the waiters
			return
		}
		l.synced0()
	}
	for _, p := range l.waiters {
		p.done <- nil
	}
	l.waiters = l.waiters[:0]
}

// synced0 records that everything written is on disk: readers may read
// it, and it counts.
func (l *Log) synced0() {
	l.dirty = false
	l.mu.Lock()
	l.synced = l.end
	l.segs[len(l.segs)-1].size = l.end - l.segs[len(l.segs)-1].base
	l.mu.Unlock()
	for i, n := range l.unsynced {
		l.c.Written(Kind(i+1), n)
	}
	l.unsynced = [numKinds]int{}
}

// writeFailed handles a write or sync error: what was written since the
// last sync is cut off (counted dropped, and its waiters get the error),
// and the log goes on from the last synced record.
func (l *Log) writeFailed(err error) {
	l.c.WriteErrors.Inc()
	if now := time.Now(); now.Sub(l.loggedErr) >= time.Minute {
		more := ""
		if l.unloggedErrs > 0 {
			more = fmt.Sprintf(" (%d more errors since the last line)", l.unloggedErrs)
		}
		l.cfg.Logf(logging.Error+"traffic log: %v; the records written since the last sync are dropped, and the log goes on from position %d%s", err, l.synced, more)
		l.loggedErr, l.unloggedErrs = now, 0
	} else {
		l.unloggedErrs++
	}
	for _, p := range l.waiters {
		p.done <- fmt.Errorf("cannot write the traffic log: %w", err)
	}
	l.waiters = l.waiters[:0]
	for _, n := range l.unsynced {
		l.c.DropWrite.Add(n)
	}
	l.unsynced = [numKinds]int{}
	l.mu.Lock()
	synced := l.synced
	l.mu.Unlock()
	base := l.activeBase
	l.end = synced
	l.dirty = false
	if terr := l.f.Truncate(synced - base); terr != nil {
		l.cfg.Logf(logging.Error+"traffic log: cannot cut %s back to its synced end: %v", l.f.Name(), terr)
	}
	if _, serr := l.f.Seek(synced-base, io.SeekStart); serr != nil {
		l.cfg.Logf(logging.Error+"traffic log: cannot seek in %s: %v", l.f.Name(), serr)
	}
	l.w.Reset(l.f)
}

// rotate seals the active segment (flushed and fsynced), starts the next
// one at the log's end and deletes the oldest segments past the budget.
func (l *Log) rotate() error {
	if err := l.w.Flush(); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return err
	}
	l.synced0()
	for _, p := range l.waiters {
		p.done <- nil
	}
	l.waiters = l.waiters[:0]
	path := filepath.Join(l.cfg.Dir, segName(l.end))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := durable.SyncDir(l.cfg.Dir); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	l.f.Close()
	l.f = f
	l.w.Reset(f)
	l.activeBase = l.end
	l.mu.Lock()
	l.segs = append(l.segs, segment{base: l.end})
	l.mu.Unlock()
	l.retain()
	return nil
}

// retain deletes the oldest segments, but the last (the one written),
// until the others and a full last one fit the log's byte budget.
func (l *Log) retain() {
	l.mu.Lock()
	var drop []segment
	total := int64(0)
	for _, s := range l.segs[:len(l.segs)-1] {
		total += s.size
	}
	// Room for the last segment to fill: the budget holds whatever it
	// does.
	for len(l.segs) > 1 && total+l.cfg.SegmentBytes > l.cfg.MaxBytes {
		drop = append(drop, l.segs[0])
		total -= l.segs[0].size
		l.segs = l.segs[1:]
	}
	l.mu.Unlock()
	for _, s := range drop {
		if err := os.Remove(filepath.Join(l.cfg.Dir, segName(s.base))); err != nil {
			l.cfg.Logf(logging.Warning+"traffic log: cannot delete the old segment %s: %v", segName(s.base), err)
		}
	}
	if len(drop) > 0 {
		// Else a crash could bring a deleted segment back, and with it
		// positions readers were told are gone.
		if err := durable.SyncDir(l.cfg.Dir); err != nil {
			l.cfg.Logf(logging.Warning+"traffic log: cannot sync the directory after deleting old segments: %v", err)
		}
	}
}

// Stats is what the log holds now.
type Stats struct {
	// First is the position of the oldest record, Next the position the
	// next record readable will have: [First, Next) is readable.
	First, Next int64
	Segments    int
	Bytes       int64 // on disk, in the segments listed
}

// Stats returns what the log holds now.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Stats{First: l.segs[0].base, Next: l.synced, Segments: len(l.segs)}
	for _, s := range l.segs {
		st.Bytes += s.size
	}
	return st
}

// MaxRecordBytes returns the most bytes AppendSync takes at once.
func (l *Log) MaxRecordBytes() int { return l.cfg.MaxRecordBytes }
