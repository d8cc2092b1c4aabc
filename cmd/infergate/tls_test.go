package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/internal/testcerts"
	"github.com/infergate/infergate/internal/testenv"
)

// tlsClient returns a test client trusting ca, presenting cert (if any).
func tlsClient(ca *testcerts.CA, cert *tls.Certificate) *fasthttp.Client {
	tc := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &fasthttp.Client{TLSConfig: tc, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
}

// A server with --tls-cert serves HTTPS: predictions, the admin CLI with
// --ca-cert, a 400 that says so to plain HTTP, the certificate's expiry
// in /metrics; it reloads rotated files without a restart; and a
// keep-alive connection outlives --write-timeout (a TLS write that times
// out breaks its connection for good).
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	certFile, keyFile := ca.Issue(t, "gateway", time.Now().Add(2*time.Hour).Truncate(time.Second), "127.0.0.1")
	s := startServerWith(t, tlsClient(ca, nil), "--models", demoRepo(t), "--load", "ctr",
		"--tls-cert", certFile, "--tls-key", keyFile, "--write-timeout", "1s")
	if s.scheme != "https" {
		t.Fatalf("serving on %s://; want https", s.scheme)
	}
	body, _ := inferBody(1, 64, 1)
	if code, b, _ := s.post(t, "/v2/models/ctr/infer", body); code != 200 {
		t.Fatalf("infer over HTTPS: %d %s", code, b)
	}

	// One connection, used again after the write timeout has passed.
	one := tlsClient(ca, nil)
	one.MaxConnsPerHost = 1
	s.hc = one
	for i := range 2 {
		if code, b, _ := s.post(t, "/v2/models/ctr/infer", body); code != 200 {
			t.Fatalf("request %d on a kept-alive connection: %d %s", i, code, b)
		}
		time.Sleep(1500 * time.Millisecond)
	}
	s.hc = tlsClient(ca, nil)

	// Plain HTTP on the HTTPS port.
	plain := &server{scheme: "http", addr: s.addr}
	if code, b, _ := plain.get(t, "/v2/health/ready"); code != 400 || !strings.Contains(string(b), "use https://") {
		t.Fatalf("plain HTTP: %d %s; want 400 saying to use https://", code, b)
	}
	// A client that does not trust the certificate: logged once, counted.
	untrusting := &server{scheme: "https", addr: s.addr, hc: &fasthttp.Client{}}
	for range 3 {
		if code, _, _ := untrusting.get(t, "/v2/health/ready"); code != 0 {
			t.Fatalf("a client without the CA got %d", code)
		}
	}
	metric := func(name string) float64 {
		t.Helper()
		_, b, _ := s.get(t, "/metrics")
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no %s in /metrics", name)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	if got, want := metric("infergate_tls_certificate_expiry_timestamp_seconds"), float64(time.Now().Add(2*time.Hour).Truncate(time.Second).Unix()); got < want-5 || got > want {
		t.Fatalf("expiry %v; want about %v", got, want)
	}
	// Each counts under its reason: what an operator does differs.
	// (A failed handshake is counted once the server is done with the
	// connection, which may be after the client has its answer.)
	testenv.CheckFor(t, 5*time.Second, func() error {
		plain := metric(`infergate_tls_handshake_errors_total{reason="plain_http"}`)
		refused := metric(`infergate_tls_handshake_errors_total{reason="client_refused"}`)
		other := metric(`infergate_tls_handshake_errors_total{reason="other"}`)
		if plain != 1 || refused < 3 || other != 0 {
			return fmt.Errorf("handshake errors: plain_http %v, client_refused %v, other %v; want 1, at least 3 (the untrusting clients; the client may retry), 0", plain, refused, other)
		}
		return nil
	})
	if strings.Contains(s.stderr.String(), "error when serving connection") {
		t.Fatalf("fasthttp logged the failed handshakes too:\n%s", s.stderr.String())
	}
	for wait := time.Now().Add(5 * time.Second); !strings.Contains(s.stderr.String(), "tls: handshake with") && time.Now().Before(wait); {
		time.Sleep(50 * time.Millisecond) // the log comes through a pipe
	}
	if n := strings.Count(s.stderr.String(), "tls: handshake with"); n != 1 {
		t.Fatalf("%d log lines about failed handshakes; want 1 (a minute's first):\n%s", n, s.stderr.String())
	}
	// Every family has a HELP text, those that only serve registers
	// (TLS, disk) included.
	_, b, _ := s.get(t, "/metrics")
	for _, name := range []string{"infergate_tls_certificate_expiry_timestamp_seconds", "infergate_disk_free_bytes", "go_goroutines", "process_cpu_seconds_total", "process_open_fds", "process_max_fds"} {
		if !strings.Contains(string(b), "\n# HELP "+name+" ") {
			t.Errorf("/metrics has no HELP text for %s:\n%s", name, grepLines(string(b), "# HELP "+name))
		}
	}
	checkHelpTexts(t, b)

	// The status page names the certificate and its expiry.
	if code, b, _ := s.get(t, "/"); code != 200 || !strings.Contains(string(b), "HTTPS certificate gateway, valid until") {
		t.Fatalf("status page: %d; want the certificate named", code)
	}

	// The admin CLI: with --ca-cert, and without, told what to give.
	checkExit(t, 0, "no models are registered", "models", "list", "--addr", "https://"+s.addr, "--ca-cert", ca.File)
	checkExit(t, 1, "give --ca-cert", "models", "list", "--addr", "https://"+s.addr)
	// An address without a scheme is https with the TLS flags; http://
	// with them is refused (the token would go in the clear).
	checkExit(t, 0, "no models are registered", "models", "list", "--addr", s.addr, "--ca-cert", ca.File)
	checkExit(t, 1, "is plain HTTP, but HTTPS is configured (--ca-cert)", "models", "list", "--addr", "http://"+s.addr, "--ca-cert", ca.File)
	t.Setenv("INFERGATE_CA_CERT", ca.File)
	checkExit(t, 1, "is plain HTTP, but HTTPS is configured ($INFERGATE_CA_CERT)", "models", "list", "--addr", "http://"+s.addr)
	checkExit(t, 0, "no models are registered", "models", "list", "--addr", s.addr)
	os.Unsetenv("INFERGATE_CA_CERT")
	checkExit(t, 1, "is plain HTTP, but HTTPS is configured (--ca-cert)", "trainer", "ctr", "--once", "--addr", "http://"+s.addr, "--ca-cert", ca.File, "--state", filepath.Join(t.TempDir(), "st.json"))

	// bench measures an HTTPS gateway, its statistics included; its
	// --target takes the TLS settings as --addr does (no scheme: https;
	// http:// refused).
	checkExit(t, 1, "--target http://"+s.addr+" is plain HTTP, but HTTPS is configured (--ca-cert)", "bench", "--target", "http://"+s.addr, "--ca-cert", ca.File, "--model", "ctr", "--dry-run")
	_, rep := runBenchCommand(t, "bench", "--target", s.addr, "--ca-cert", ca.File, "--model", "ctr",
		"--concurrency", "2", "--duration", "300ms", "--warmup", "100ms")
	if r := &rep.Runs[0]; r.Errors != 0 || r.Flagged != "" || len(r.ComputeBySize) == 0 {
		t.Fatalf("bench over HTTPS: %d errors, flagged %q, %d batch sizes from the statistics", r.Errors, r.Flagged, len(r.ComputeBySize))
	}

	// Rotation: new files under the same names, picked up by the next
	// handshake a second later.
	later := time.Now().Add(5 * time.Hour).Truncate(time.Second)
	c2, k2 := ca.Issue(t, "gateway-next", later, "127.0.0.1")
	for _, p := range [][2]string{{c2, certFile}, {k2, keyFile}} {
		if err := os.Rename(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		got := conn.ConnectionState().PeerCertificates[0].NotAfter
		conn.Close()
		if got.Equal(later) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server still presents the certificate valid until %s; want the rotated one, until %s", got, later)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for !strings.Contains(s.stderr.String(), "tls: reloaded the certificate") { // the log comes through a pipe
		if time.Now().After(deadline) {
			t.Fatalf("no reload in the log")
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop(t)
}

// With --tls-client-ca every client presents a certificate of that CA.
func TestServeTLSClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	other := testcerts.NewCA(t, dir, "other")
	certFile, keyFile := ca.Issue(t, "gateway", time.Time{}, "127.0.0.1")
	cc, ck := ca.Issue(t, "client", time.Time{}, "client")
	oc, ok := other.Issue(t, "stranger", time.Time{}, "stranger")
	client := testcerts.KeyPair(t, cc, ck)
	s := startServerWith(t, tlsClient(ca, &client), "--models", demoRepo(t), "--load", "ctr",
		"--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", ca.File)
	stranger := testcerts.KeyPair(t, oc, ok)
	for name, hc := range map[string]*fasthttp.Client{"no certificate": tlsClient(ca, nil), "another CA's": tlsClient(ca, &stranger)} {
		c := &server{scheme: "https", addr: s.addr, hc: hc}
		if code, b, _ := c.get(t, "/v2/health/ready"); code != 0 {
			t.Fatalf("a client with %s got %d %s", name, code, b)
		}
	}
	testenv.CheckFor(t, 5*time.Second, func() error {
		_, b, _ := s.get(t, "/metrics")
		m := regexp.MustCompile(`infergate_tls_handshake_errors_total\{reason="client_certificate"\} (\d+)`).FindSubmatch(b)
		if m == nil {
			return fmt.Errorf("no client_certificate handshake errors in /metrics:\n%s", grepLines(string(b), "handshake_errors"))
		}
		if n, _ := strconv.Atoi(string(m[1])); n < 2 {
			return fmt.Errorf("/metrics does not count the two clients without a certificate of the CA under client_certificate:\n%s", grepLines(string(b), "handshake_errors"))
		}
		return nil
	})
	// The families only client CAs bring (infergate_tls_ca_reload_failing)
	// have HELP texts too.
	_, b, _ := s.get(t, "/metrics")
	if !strings.Contains(string(b), "# HELP infergate_tls_ca_reload_failing ") {
		t.Errorf("/metrics has no HELP text for infergate_tls_ca_reload_failing:\n%s", grepLines(string(b), "ca_reload"))
	}
	checkHelpTexts(t, b)
	checkExit(t, 1, "give --client-cert and --client-key", "models", "list", "--addr", "https://"+s.addr, "--ca-cert", ca.File)
	checkExit(t, 0, "no models are registered", "models", "list", "--addr", "https://"+s.addr, "--ca-cert", ca.File, "--client-cert", cc, "--client-key", ck)
}

// mustRead returns the contents of file.
func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A CA added to the --tls-client-ca file is taken by the next
// handshakes, and refused again once dropped from it, without a restart;
// a file that does not load leaves the CAs in use, is logged once, and
// sets infergate_tls_ca_reload_failing until the file loads again.
func TestServeTLSClientCARotation(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	next := testcerts.NewCA(t, dir, "next")
	certFile, keyFile := ca.Issue(t, "gateway", time.Time{}, "127.0.0.1")
	cc, ck := ca.Issue(t, "client", time.Time{}, "client")
	nc, nk := next.Issue(t, "newcomer", time.Time{}, "newcomer")
	client, newcomer := testcerts.KeyPair(t, cc, ck), testcerts.KeyPair(t, nc, nk)
	caPEM, nextPEM := mustRead(t, ca.File), mustRead(t, next.File)
	bundle := filepath.Join(dir, "clients.pem")
	if err := os.WriteFile(bundle, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerWith(t, tlsClient(ca, &client), "--models", demoRepo(t), "--load", "ctr",
		"--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", bundle)

	// takes reports whether a new connection presenting cert gets an
	// answer (a fresh client: a kept-alive connection keeps what its
	// handshake verified).
	takes := func(cert tls.Certificate) bool {
		c := &server{scheme: "https", addr: s.addr, hc: tlsClient(ca, &cert)}
		code, _, _ := c.get(t, "/v2/health/live")
		return code == 200
	}
	failing := func() float64 {
		t.Helper()
		_, b, _ := s.get(t, "/metrics")
		m := regexp.MustCompile(`(?m)^infergate_tls_ca_reload_failing (\S+)$`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no infergate_tls_ca_reload_failing in /metrics")
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	// eventually polls cond every 100 ms for 10 s: the server looks at
	// the file at most once a second.
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not after 10 s: %s", what)
			}
		}
	}
	if takes(newcomer) || !takes(client) {
		t.Fatalf("at start: the newcomer taken %v, the client %v; want false, true", takes(newcomer), takes(client))
	}

	// The newcomer's CA joins the file (renamed into place).
	tmp := bundle + ".new"
	if err := os.WriteFile(tmp, append(append([]byte{}, caPEM...), nextPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, bundle); err != nil {
		t.Fatal(err)
	}
	eventually("the newcomer is taken once its CA is in the file", func() bool { return takes(newcomer) })
	if !takes(client) || failing() != 0 {
		t.Fatalf("once the file holds both CAs: the client of the first taken %v, reload failing %v; want true, 0", takes(client), failing())
	}

	// A file half written: the CAs in use stay, the gauge says so.
	if err := os.WriteFile(bundle, append(append([]byte{}, caPEM...), nextPEM[:len(nextPEM)/2]...), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually("infergate_tls_ca_reload_failing is 1 with a file cut short", func() bool { return failing() == 1 })
	if !takes(newcomer) || !takes(client) {
		t.Fatalf("with the file cut short: the newcomer taken %v, the client %v; want both, as before", takes(newcomer), takes(client))
	}

	// The newcomer's CA leaves the file (written in place): refused again.
	if err := os.WriteFile(bundle, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	eventually("the newcomer is refused once its CA left the file", func() bool { return !takes(newcomer) })
	if !takes(client) || failing() != 0 {
		t.Fatalf("after the newcomer's CA left: the client taken %v, reload failing %v; want true, 0", takes(client), failing())
	}
	s.stop(t)
	log := s.stderr.String()
	if n := strings.Count(log, "tls: keeping the CAs loaded before from "+bundle+": the CA file "+bundle+" has PEM blocks that do not decode"); n != 1 {
		t.Fatalf("%d log lines about the file cut short; want 1:\n%s", n, log)
	}
	if n := strings.Count(log, "tls: reloaded the CA file "+bundle); n != 2 {
		t.Fatalf("%d log lines about reloads of %s; want 2 (its CA joined, then left):\n%s", n, bundle, log)
	}
}

// Two nodes over mutual TLS: the second joins over HTTPS, raft replicates
// over TLS, and a version uploaded to one is pulled by the other over
// HTTPS and served. A node whose certificate another CA signed cannot
// join, and says why; once each side's --cluster-ca holds the other's
// CA, it joins without a restart.
func TestClusterTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	tlsArgs := func(name string, ca *testcerts.CA) []string {
		c, k := ca.Issue(t, name, time.Time{}, "127.0.0.1")
		return []string{"--tls-cert", c, "--tls-key", k, "--cluster-ca", ca.File}
	}
	hc := tlsClient(ca, nil)
	raft1, raft2 := testenv.FreeAddr(t), testenv.FreeAddr(t)
	n1 := startServerWith(t, hc, append([]string{"--models", demoRepo(t), "--load", "ctr", "--cluster", raft1,
		"--admin-token", clusterToken, "--register-local-models"}, tlsArgs("n1", ca)...)...)
	n2 := startServerWith(t, hc, append([]string{"--models", t.TempDir(), "--cluster", raft2,
		"--admin-token", clusterToken, "--join", "https://" + n1.addr}, tlsArgs("n2", ca)...)...)
	admin := map[string]string{"Authorization": "Bearer " + clusterToken}

	// A new version uploaded through n1 serves on n2.
	onnx, err := os.ReadFile(filepath.Join(demoRepo(t), "ctr", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for { // n1 registers its local models once it leads
		code, b, _ := n1.do(t, "POST", "/v1/models/ctr/versions", onnx, admin)
		if code == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload: %d %s", code, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, _ := inferBody(1, 64, 1)
	for {
		code, b, _ := n2.post(t, "/v2/models/ctr/versions/2/infer", body)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("version 2 on the joined node: %d %s\nn2 log:\n%s", code, b, n2.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkExit(t, 0, "https://"+n2.addr, "cluster", "status", "--addr", "https://"+n2.addr, "--ca-cert", ca.File, "--admin-token", clusterToken)

	// A stranger: its CA is not the cluster's.
	other := testcerts.NewCA(t, dir, "other")
	args := append([]string{"serve", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--ort-lib", testenv.ORTLib(t),
		"--models", t.TempDir(), "--cluster", testenv.FreeAddr(t), "--admin-token", clusterToken, "--join", "https://" + n1.addr}, tlsArgs("stranger", other)...)
	cmd := exec.Command(binPath, args...)
	log := &syncBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline = time.Now().Add(20 * time.Second)
	for !strings.Contains(log.String(), "cannot announce") {
		if time.Now().After(deadline) {
			t.Fatalf("the stranger did not report its failed join:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if l := log.String(); !strings.Contains(l, "certificate signed by unknown authority") || strings.Contains(l, "may or may not have been applied") {
		t.Fatalf("the stranger's log does not say its join failed for the certificate, for sure:\n%s", l)
	}
	// Meanwhile it says it is not ready: it serves none of the cluster's
	// models.
	m := servingLine.FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("no address in the stranger's log:\n%s", log.String())
	}
	probe := &server{scheme: m[1], addr: m[2], hc: &fasthttp.Client{TLSConfig: &tls.Config{InsecureSkipVerify: true}}}
	if code, b, _ := probe.get(t, "/v2/health/ready"); code != 503 || !strings.Contains(string(b), "has not joined its cluster yet") {
		t.Fatalf("the stranger's readiness: %d %s; want 503, not joined", code, b)
	}
	code, b, _ := n1.do(t, "GET", "/v1/cluster", nil, admin)
	if code != 200 || strings.Count(string(b), `"id"`) != 2 {
		t.Fatalf("cluster after the stranger's attempts: %d %s; want the two members", code, b)
	}

	// Each side's --cluster-ca gains the other's CA, without a restart:
	// the members' file renamed into place, the stranger's written in
	// place. The stranger's next attempt joins (its HTTPS call to n1,
	// n1's raft dial to it, its raft server taking n1's certificate), and
	// it pulls and serves version 2 over HTTPS.
	both := append(mustRead(t, ca.File), mustRead(t, other.File)...)
	if err := os.WriteFile(ca.File+".new", both, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ca.File+".new", ca.File); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other.File, both, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, b, _ := probe.post(t, "/v2/models/ctr/versions/2/infer", body)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stranger after the CA files gained each other's CA: %d %s; want version 2 served\nits log:\n%s", code, b, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, b, _ = n1.do(t, "GET", "/v1/cluster", nil, admin)
	if code != 200 || strings.Count(string(b), `"id"`) != 3 {
		t.Fatalf("cluster after the CA files changed: %d %s; want three members", code, b)
	}
}

// The TLS flags are checked before anything starts.
func TestServeTLSFlags(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	c, k := ca.Issue(t, "n", time.Time{}, "127.0.0.1")
	_, k2 := ca.Issue(t, "m", time.Time{}, "127.0.0.1")
	base := []string{"serve", "--dry-run", "--models", demoRepo(t), "--data", t.TempDir(), "--ort-lib", testenv.ORTLib(t)}
	f := func(want string, args ...string) {
		t.Helper()
		checkExit(t, 1, want, append(append([]string{}, base...), args...)...)
	}
	f("--tls-cert and --tls-key go together", "--tls-cert", c)
	f("--tls-client-ca needs --tls-cert", "--tls-client-ca", ca.File)
	f("--cluster-ca needs --tls-cert", "--cluster-ca", ca.File)
	f("needs --cluster-ca", "--tls-cert", c, "--tls-key", k, "--cluster", "10.0.0.5:7000")
	f("needs --cluster-ca", "--tls-cert", c, "--tls-key", k, "--cluster", "127.0.0.1:7000", "--join", "https://127.0.0.1:8081", "--admin-token", "x")
	f("private key does not match", "--tls-cert", c, "--tls-key", k2)
	f("--join http://127.0.0.1:8081 must be https://", "--tls-cert", c, "--tls-key", k, "--cluster-ca", ca.File, "--cluster", "127.0.0.1:7000", "--join", "http://127.0.0.1:8081", "--admin-token", "x")
	f("must be https://", "--tls-cert", c, "--tls-key", k, "--cluster-ca", ca.File, "--advertise-http", "http://127.0.0.1:8080")
	f("holds no PEM certificate", "--tls-cert", c, "--tls-key", k, "--tls-client-ca", k)
	old, oldk := ca.Issue(t, "old", time.Now().Add(-time.Minute), "127.0.0.1")
	f("expired at", "--tls-cert", old, "--tls-key", oldk)
	so, sok := ca.IssueFor(t, "server-only", time.Time{}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "127.0.0.1")
	f("the other members would refuse it", "--tls-cert", so, "--tls-key", sok, "--cluster-ca", ca.File)
	other := testcerts.NewCA(t, dir, "other")
	oc, ok := other.Issue(t, "o", time.Time{}, "127.0.0.1")
	f("the other members would refuse it", "--tls-cert", oc, "--tls-key", ok, "--cluster-ca", ca.File)
	elsewhere, ek := ca.Issue(t, "elsewhere", time.Time{}, "10.0.0.9")
	f("does not name this node's --cluster IP", "--tls-cert", elsewhere, "--tls-key", ek, "--cluster-ca", ca.File, "--cluster", "127.0.0.1:7000")
	f("does not name the host peers reach", "--tls-cert", c, "--tls-key", k, "--cluster-ca", ca.File, "--cluster", "127.0.0.1:7000", "--advertise-http", "https://gw.example:8080")
	checkExit(t, 0, "configuration is valid", append(append([]string{}, base...), "--tls-cert", c, "--tls-key", k, "--cluster-ca", ca.File, "--cluster", "127.0.0.1:7000")...)
}

// The Kafka TLS and SASL flags are checked before anything starts; the
// password comes from the environment only.
func TestKafkaSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	c, _ := ca.Issue(t, "n", time.Time{}, "127.0.0.1")
	base := []string{"serve", "--dry-run", "--models", demoRepo(t), "--data", t.TempDir(), "--ort-lib", testenv.ORTLib(t),
		"--traffic-percent", "10", "--traffic-kafka-brokers", "127.0.0.1:9092"}
	f := func(want string, args ...string) {
		t.Helper()
		checkExit(t, 1, want, append(append([]string{}, base...), args...)...)
	}
	f("--traffic-kafka-cert and --traffic-kafka-key go together", "--traffic-kafka-cert", c)
	f("holds no PEM certificate", "--traffic-kafka-ca", filepath.Join(dir, "n-key.pem"))
	f("needs a user", "--traffic-kafka-sasl", "SCRAM-SHA-512")
	f("$INFERGATE_KAFKA_PASSWORD", "--traffic-kafka-sasl", "PLAIN", "--traffic-kafka-tls", "--traffic-kafka-sasl-user", "gw")
	f("PLAIN sends the password as it is", "--traffic-kafka-sasl", "PLAIN", "--traffic-kafka-sasl-user", "gw")
	checkExit(t, 1, "apply to Kafka brokers: name them with --traffic-kafka-brokers",
		"serve", "--dry-run", "--models", demoRepo(t), "--data", t.TempDir(), "--ort-lib", testenv.ORTLib(t), "--traffic-percent", "10", "--traffic-kafka-tls")
	checkExit(t, 1, "apply to Kafka brokers: name them with --kafka-brokers", "traffic", "read", "--kafka-ca", ca.File)
	f("--traffic-kafka-sasl-user without --traffic-kafka-sasl", "--traffic-kafka-sasl-user", "gw")
	t.Setenv("INFERGATE_KAFKA_PASSWORD", "pw")
	f("use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", "--traffic-kafka-sasl", "KERBEROS", "--traffic-kafka-sasl-user", "gw")
	checkExit(t, 0, "configuration is valid", append(append([]string{}, base...), "--traffic-kafka-ca", ca.File, "--traffic-kafka-sasl", "scram-sha-512", "--traffic-kafka-sasl-user", "gw")...)
	checkExit(t, 1, "needs a user", "traffic", "read", "--kafka-brokers", "127.0.0.1:1", "--kafka-sasl", "SCRAM-SHA-256")
}

// checkHelpTexts fails t for each family of the /metrics text b whose
// HELP line has no text.
func checkHelpTexts(t *testing.T, b []byte) {
	t.Helper()
	for line := range strings.Lines(string(b)) {
		if name, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "# HELP "); ok && !strings.Contains(name, " ") {
			t.Errorf("%s has no HELP text on /metrics: add one to helpTexts in gateway/metrics_help.go", name)
		}
	}
}

// A CA dropped from --cluster-ca while this node's certificate is still
// of that CA: the members would refuse this node's connections from then
// on. infergate_tls_certificate_untrusted says so, and the log says what
// to do, once; putting the CA back ends it.
func TestServeClusterCADroppedUnderItsCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	next := testcerts.NewCA(t, dir, "next")
	certFile, keyFile := ca.Issue(t, "n1", time.Time{}, "127.0.0.1")
	caPEM, nextPEM := mustRead(t, ca.File), mustRead(t, next.File)
	bundle := filepath.Join(dir, "cluster.pem")
	if err := os.WriteFile(bundle, append(append([]byte{}, caPEM...), nextPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerWith(t, tlsClient(ca, nil), "--models", t.TempDir(), "--cluster", testenv.FreeAddr(t),
		"--tls-cert", certFile, "--tls-key", keyFile, "--cluster-ca", bundle)
	untrusted := func() string {
		t.Helper()
		_, b, _ := s.get(t, "/metrics")
		m := regexp.MustCompile(`(?m)^infergate_tls_certificate_untrusted (\S+)$`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no infergate_tls_certificate_untrusted in /metrics")
		}
		return string(m[1])
	}
	if got := untrusted(); got != "0" {
		t.Fatalf("at start: untrusted %s; want 0", got)
	}
	replace := func(content []byte) {
		t.Helper()
		tmp := bundle + ".new"
		if err := os.WriteFile(tmp, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, bundle); err != nil {
			t.Fatal(err)
		}
	}
	replace(nextPEM) // the node's own CA dropped
	testenv.CheckFor(t, 10*time.Second, func() error {
		if got := untrusted(); got != "1" {
			return fmt.Errorf("with its CA dropped from --cluster-ca: untrusted %s; want 1", got)
		}
		return nil
	})
	testenv.CheckFor(t, 5*time.Second, func() error { // the log comes through a pipe
		if n := strings.Count(s.stderr.String(), "no longer passes the members' checks"); n != 1 {
			return fmt.Errorf("%d log lines about the certificate's trust; want 1:\n%s", n, s.stderr.String())
		}
		return nil
	})
	_, b, _ := s.get(t, "/metrics")
	checkHelpTexts(t, b)
	replace(append(append([]byte{}, caPEM...), nextPEM...))
	testenv.CheckFor(t, 10*time.Second, func() error {
		if got := untrusted(); got != "0" {
			return fmt.Errorf("with its CA back: untrusted %s; want 0", got)
		}
		return nil
	})
	testenv.CheckFor(t, 5*time.Second, func() error {
		if !strings.Contains(s.stderr.String(), "is one the other members take again") {
			return fmt.Errorf("the log does not say the certificate is taken again:\n%s", s.stderr.String())
		}
		return nil
	})
	if n := strings.Count(s.stderr.String(), "no longer passes the members' checks"); n != 1 {
		t.Fatalf("%d log lines about the certificate's trust; want 1, however many scrapes:\n%s", n, s.stderr.String())
	}
}
