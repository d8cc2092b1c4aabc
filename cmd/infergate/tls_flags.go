package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/infergate/infergate/internal/certs"
)

// tlsClientFlags say how a command's calls trust servers that serve
// HTTPS (serve --tls-cert), and which certificate they present to those
// that ask for one (serve --tls-client-ca).
type tlsClientFlags struct {
	caFile, certFile, keyFile string
}

// addTLSClientFlags defines --ca-cert, --client-cert and --client-key on fs.
func addTLSClientFlags(fs *flag.FlagSet) *tlsClientFlags {
	f := &tlsClientFlags{}
	fs.StringVar(&f.caFile, "ca-cert", "", "for https:// addresses, trust the CAs in this PEM file instead of the system's; read again when it changes, for the next connections (default $INFERGATE_CA_CERT)")
	fs.StringVar(&f.certFile, "client-cert", "", "present this PEM certificate to servers started with --tls-client-ca; read again, with --client-key, when they change (default $INFERGATE_CLIENT_CERT)")
	fs.StringVar(&f.keyFile, "client-key", "", "the PEM private key of --client-cert (default $INFERGATE_CLIENT_KEY)")
	return f
}

// config returns the TLS client the flags and the environment describe,
// or nil when they describe none (the system's CAs, no client
// certificate). Its files are read again when they change, for the
// connections made after (a trainer, traffic read --follow and bench
// run for long); the log says when they are, or do not load.
func (f *tlsClientFlags) config() (*certs.Client, error) {
	ca, cert, key := orEnv(f.caFile, "INFERGATE_CA_CERT"), orEnv(f.certFile, "INFERGATE_CLIENT_CERT"), orEnv(f.keyFile, "INFERGATE_CLIENT_KEY")
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("--client-cert and --client-key go together: give both (or $INFERGATE_CLIENT_CERT and $INFERGATE_CLIENT_KEY)")
	}
	return certs.ClientFiles(ca, cert, key, settingName(f.caFile, "--ca-cert", "$INFERGATE_CA_CERT"),
		settingName(f.certFile, "--client-cert", "$INFERGATE_CLIENT_CERT"), cliLog.Logf)
}

// settingName names, for an error, the setting a file came from: the
// flag flagName when given (flagValue), else the environment's variable
// envName.
func settingName(flagValue, flagName, envName string) string {
	if flagValue == "" {
		return envName
	}
	return flagName
}

// httpClient returns a client whose calls each take at most timeout,
// over TLS as the flags say.
func (f *tlsClientFlags) httpClient(timeout time.Duration) (*http.Client, error) {
	tc, err := f.config()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: timeout}
	if tc != nil {
		hc.Transport = tc.Transport(http.DefaultTransport.(*http.Transport))
	}
	return hc, nil
}

// baseURL returns addr, given as flag flagName, with its scheme: one without gets https when TLS
// is configured (the flags or the environment), else http. An http://
// address with TLS configured is refused: the settings would be ignored,
// and a token sent in the clear.
func (f *tlsClientFlags) baseURL(flagName, addr string) (string, error) {
	var given []string
	for _, s := range [][2]string{{f.caFile, "--ca-cert"}, {f.certFile, "--client-cert"}, {os.Getenv("INFERGATE_CA_CERT"), "$INFERGATE_CA_CERT"}, {os.Getenv("INFERGATE_CLIENT_CERT"), "$INFERGATE_CLIENT_CERT"}} {
		if s[0] != "" {
			given = append(given, s[1])
		}
	}
	if !strings.Contains(addr, "://") {
		if len(given) > 0 {
			return "https://" + addr, nil
		}
		return "http://" + addr, nil
	}
	if len(given) > 0 && strings.HasPrefix(addr, "http://") {
		return "", fmt.Errorf("%s %s is plain HTTP, but HTTPS is configured (%s): use https:// (a token would go in the clear), or, for a plain server, drop the TLS settings", flagName, addr, strings.Join(given, ", "))
	}
	return addr, nil
}

// orEnv returns s, else the environment's variable name.
func orEnv(s, name string) string {
	if s == "" {
		return os.Getenv(name)
	}
	return s
}
