package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/infergate/infergate/trafficlog"
)

// maxTrafficAnswer bounds one answer of GET /v1/traffic that ReadTraffic
// asks for.
const maxTrafficAnswer = 16 << 20

// ReadTraffic reads the traffic log of the gateway at base (its HTTP base
// URL) from position from (-1: its oldest record) to its end, in answers
// of up to 16 MiB, and calls fn with each event (valid only during the
// call). token is the admin token, if the gateway has one. It returns the
// position where a later read goes on. A position the log deleted (410)
// is an *HTTPError with Code 410.
func ReadTraffic(ctx context.Context, hc *http.Client, base, token string, from int64, fn func(*trafficlog.Event)) (int64, error) {
	base = strings.TrimRight(base, "/")
	pos := from
	var e trafficlog.Event
	for {
		q := url.Values{"format": {"binary"}, "max_bytes": {strconv.Itoa(maxTrafficAnswer)}}
		if pos >= 0 {
			q.Set("from", strconv.FormatInt(pos, 10))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/traffic?"+q.Encode(), nil)
		if err != nil {
			return pos, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return pos, fmt.Errorf("cannot read the traffic log of %s: %w", base, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 2*maxTrafficAnswer))
		resp.Body.Close()
		if err != nil {
			return pos, fmt.Errorf("cannot read the traffic log of %s: %w", base, err)
		}
		if resp.StatusCode != http.StatusOK {
			return pos, &HTTPError{Code: resp.StatusCode, Msg: fmt.Sprintf("the traffic log of %s: HTTP %d: %s", base, resp.StatusCode, strings.TrimSpace(string(body)))}
		}
		next, err1 := strconv.ParseInt(resp.Header.Get("X-Traffic-Next"), 10, 64)
		end, err2 := strconv.ParseInt(resp.Header.Get("X-Traffic-End"), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return pos, fmt.Errorf("the traffic log of %s: the answer lacks its positions (is it an infergate node?): %w", base, err)
		}
		for len(body) > 0 {
			n, err := trafficlog.Decode(body, &e)
			if err != nil {
				return pos, fmt.Errorf("the traffic log of %s: %w", base, err)
			}
			fn(&e)
			body = body[n:]
		}
		pos = next
		if next >= end {
			return pos, nil
		}
	}
}
