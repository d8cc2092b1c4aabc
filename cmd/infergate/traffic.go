package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/trafficlog"
	"github.com/infergate/infergate/trafficlog/kafka"
)

// This file holds `infergate traffic`: reading a node's traffic log
// (GET /v1/traffic) for people and scripts.

// runTraffic is `infergate traffic`; see runModels.
func runTraffic(args []string) error { return exitAdmin(trafficGroup.main(args, os.Stdout, os.Stderr)) }

var trafficGroup = &adminGroup{
	name: "traffic",
	description: `Read the traffic log of one node (serve --traffic-percent): the sampled
predictions with their inputs and outputs, and the feedback clients reported.
Each node keeps its own log; read every node's for the whole traffic.`,
	subs: []adminSub{
		{"stats", "", "show what the node's traffic log holds: positions, segments, bytes", trafficStats},
		{"read", "", "print the node's traffic log as JSON lines, from a position, or follow it", trafficRead},
	},
}

func trafficStats(out adminOutput, args []string) error {
	fs := out.flagSet("traffic stats", "[flags]", `Show what the traffic log of the node at --addr holds: the positions of its
oldest record and of its end, its segment files and bytes, and the share of
predictions it logs.`)
	cfg := adminFlags(fs, false)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	var st struct {
		First    int64   `json:"first"`
		End      int64   `json:"end"`
		Segments int     `json:"segments"`
		Bytes    int64   `json:"bytes"`
		Percent  float64 `json:"percent"`
	}
	if ans, err := out.getInto(cfg, "/v1/traffic/stats", &st); ans == nil || err != nil {
		return err
	}
	segments := "segments"
	if st.Segments == 1 {
		segments = "segment"
	}
	_, err := fmt.Fprintf(out.stdout, "positions %d to %d, %d bytes in %d %s; logging %g%% of the predictions and all feedback\n",
		st.First, st.End, st.Bytes, st.Segments, segments, st.Percent)
	return err
}

func trafficRead(out adminOutput, args []string) error {
	fs := out.flagSet("traffic read", "[flags]", `Print the traffic log of the node at --addr as JSON lines, one event each with
its position, from --from (default: the oldest record) to the end, or, with
--follow, on as new records come (until interrupted). A position the log
deleted to keep within its budget is reported, and with --follow reading goes
on from the oldest record, as it does from a log that started over (the
node's data wiped or replaced: its X-Traffic-Log identity changed).

With --kafka-brokers it reads the Kafka topic the nodes log to (serve
--traffic-kafka-brokers) instead, from its oldest records; its lines carry no
position. With --follow, brokers that cannot be reached (restarting, say) are
waited for, and reading goes on where it was.

  infergate traffic read --from 0 | jq -c 'select(.kind == "feedback")'
  infergate traffic read --follow
  infergate traffic read --kafka-brokers 10.0.0.9:9092 --kafka-topic infergate-traffic`)
	cfg := adminFlags(fs, false)
	from := fs.Int64("from", -1, "position to start at, as a line's \"position\" or the last read's end; left out, the oldest record")
	follow := fs.Bool("follow", false, "keep reading new records as they come, until interrupted")
	poll := fs.Duration("poll", time.Second, "with --follow, how often to ask for new records")
	maxBytes := fs.Int("max-bytes", 4<<20, "most bytes of records one request reads")
	kafkaBrokers := fs.String("kafka-brokers", "", "read a Kafka topic instead of a node's log: seed brokers, host:port, comma-separated")
	kafkaTopic := fs.String("kafka-topic", "infergate-traffic", "with --kafka-brokers, the topic")
	kafkaSec := addKafkaSecurityFlags(fs, "kafka-")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	fromSet := false
	fs.Visit(func(f *flag.Flag) { fromSet = fromSet || f.Name == "from" })
	if fromSet && *from < 0 {
		// -1 stands for "not given" below: a negative --from would read
		// the whole log.
		fmt.Fprintf(fs.Output(), "--from %d is not a position: give 0 or more (a line's \"position\"), or leave it out to start at the oldest record\n", *from)
		fs.Usage()
		return errUsage
	}
	if *poll <= 0 || *maxBytes < 1 || *maxBytes > gateway.MaxTrafficRead {
		fmt.Fprintf(fs.Output(), "--poll must be positive and --max-bytes 1 to %d\n", gateway.MaxTrafficRead)
		fs.Usage()
		return errUsage
	}
	if err := kafkaSec.check(*kafkaBrokers); err != nil {
		return err
	}
	if *kafkaBrokers != "" {
		if *from != -1 || *maxBytes != 4<<20 {
			return errors.New("--from and --max-bytes read a node's log; a Kafka topic is read from its oldest records")
		}
		sec, err := kafkaSec.security(cliLog.Logf)
		if err != nil {
			return err
		}
		return readKafka(out, splitAddrs(*kafkaBrokers), *kafkaTopic, sec, *follow, *poll)
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	pos := *from
	logID := "" // the identity of the log pos is in (X-Traffic-Log)
	// waiting is what a follow waits out, said once: "node" (it does not
	// answer), "damage" (in the segment it writes), or "".
	waiting := ""
	reached := false // the node answered once
	for {
		q := url.Values{"max_bytes": {strconv.Itoa(*maxBytes)}}
		if pos >= 0 {
			q.Set("from", strconv.FormatInt(pos, 10))
		}
		ans, err := cl.call(http.MethodGet, "/v1/traffic", q, "", nil)
		var h http.Header
		if ans != nil {
			h = ans.header
		} else if ae, ok := err.(*adminError); ok {
			h = ae.header
		}
		if id := h.Get("X-Traffic-Log"); id != "" {
			if logID != "" && id != logID && pos >= 0 {
				// The node's log was made anew (its data wiped or
				// replaced): pos means nothing in it.
				fmt.Fprintf(out.stderr, "infergate traffic read: the node's traffic log started over (it is log %s, no longer %s); going on from its oldest record\n", id, logID)
				logID, pos = id, -1
				continue
			}
			logID = id
		}
		if ae, ok := err.(*adminError); ok && ae.status == http.StatusGone && *follow {
			fmt.Fprintf(out.stderr, "infergate traffic read: %s; going on from the oldest record\n", ae.msg)
			pos = -1
			continue
		}
		ae, _ := err.(*adminError)
		var down bool
		switch {
		case err == nil:
		case ae == nil:
			down = waitsOut(err, reached)
		default:
			down = ae.status == http.StatusServiceUnavailable || ae.status == http.StatusBadGateway || ae.status == http.StatusGatewayTimeout
		}
		if waiting == "node" && !down {
			fmt.Fprintf(out.stderr, "infergate traffic read: reached the node again; going on\n")
			waiting = ""
		}
		if err != nil && *follow {
			// What clears by itself does not end a follow: a node
			// restarting, and damage, which the node's next segment
			// is the way past.
			switch {
			case down:
				if waiting != "node" {
					fmt.Fprintf(out.stderr, "infergate traffic read: %v; trying again every %s\n", err, *poll)
					waiting = "node"
				}
				time.Sleep(*poll)
				continue
			case ae != nil && ae.header.Get("X-Traffic-Damaged") != "":
				at, _ := strconv.ParseInt(ae.header.Get("X-Traffic-Damaged"), 10, 64)
				if skip, _ := strconv.ParseInt(ae.header.Get("X-Traffic-Skip"), 10, 64); skip > at {
					fmt.Fprintf(out.stderr, "infergate traffic read: %s; skipping to position %d, where the next segment begins: the records from %d to %d are lost\n", ae.msg, skip, at, skip)
					pos = skip
					continue
				}
				if waiting != "damage" {
					fmt.Fprintf(out.stderr, "infergate traffic read: %s; waiting for the node to start its next segment, the way past it\n", ae.msg)
					waiting = "damage"
				}
				time.Sleep(*poll)
				continue
			}
		}
		if err != nil {
			return err
		}
		waiting, reached = "", true
		if _, err := out.stdout.Write(ans.body); err != nil {
			return err
		}
		next, err := strconv.ParseInt(ans.header.Get("X-Traffic-Next"), 10, 64)
		if err != nil {
			return fmt.Errorf("the answer's X-Traffic-Next header %q is not a position; is %s an infergate node?", ans.header.Get("X-Traffic-Next"), cfg.addr)
		}
		end, _ := strconv.ParseInt(ans.header.Get("X-Traffic-End"), 10, 64)
		pos = next
		if next < end {
			continue // more to read now
		}
		if !*follow {
			return nil
		}
		time.Sleep(*poll)
	}
}

// readKafka prints a Kafka topic's events as JSON lines, once or on. A
// follow waits out brokers it cannot reach, or that cannot answer for a
// while (a restart, an election), saying so once, and goes on where it
// was: the Reader keeps its place in each partition.
func readKafka(out adminOutput, brokers []string, topic string, sec kafka.Security, follow bool, poll time.Duration) error {
	ctx, stop := interruptContext()
	defer stop()
	// failing is the error a follow waits out, said once; nil when reading.
	var failing error
	var r *kafka.Reader
	wait := func(err error) bool {
		if !follow || !kafkaWaitsOut(err, r != nil) {
			return false
		}
		if failing == nil {
			fmt.Fprintf(out.stderr, "infergate traffic read: %v; trying again every %s\n", err, poll)
		}
		failing = err
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
		return true
	}
	for r == nil {
		var err error
		r, err = kafka.NewReader(ctx, brokers, topic, sec)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !wait(err):
			return err
		}
	}
	defer r.Close()
	var line []byte
	skipped := 0
	for {
		var werr error
		err := r.Read(ctx, func(e *trafficlog.Event) {
			if werr == nil {
				line = trafficlog.AppendJSON(line[:0], -1, e)
				_, werr = out.stdout.Write(line)
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		if werr != nil {
			return werr
		}
		if err != nil {
			if wait(err) {
				continue
			}
			return err
		}
		if failing != nil {
			fmt.Fprintf(out.stderr, "infergate traffic read: reached the Kafka brokers again; going on\n")
			failing = nil
		}
		if n := r.Skipped(); n > skipped {
			fmt.Fprintf(out.stderr, "infergate traffic read: skipped %d Kafka records that are not infergate's events\n", n-skipped)
			skipped = n
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// wrongAddress reports whether err, a call that got no answer, says that
// no waiting brings one: a name that does not resolve, or a server whose
// certificate is not trusted (or does not name it).
func wrongAddress(err error) bool {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return nameNotFound(err) || errors.As(err, &unknownCA) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify)
}

// nameNotFound reports whether err is a host name that does not resolve.
func nameNotFound(err error) bool {
	var dns *net.DNSError
	return errors.As(err, &dns) && dns.IsNotFound
}

// waitsOut reports whether a follow of a node's log waits out err, a
// call that got no answer: unless waiting brings none (wrongAddress). A
// name that does not resolve is one only until the node has answered
// once: then it is a node restarting whose name goes while it is down
// (a Kubernetes pod's does), not a mistyped --addr.
func waitsOut(err error, reached bool) bool {
	return !wrongAddress(err) || reached && nameNotFound(err)
}

// kafkaWaitsOut reports whether a follow of a Kafka topic waits out err,
// from kafka.NewReader or a Read: unless waiting does not mend it
// (kafka.Permanent). A broker name that does not resolve is one only
// until the topic has been reached (reading): then it is a broker
// restarting, whose advertised name goes while it is down.
func kafkaWaitsOut(err error, reading bool) bool {
	return !kafka.Permanent(err) || reading && nameNotFound(err)
}
