package gateway_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/cluster/fsm"
	"github.com/infergate/infergate/gateway"
	"github.com/infergate/infergate/internal/testenv"
)

// The status page shows a member that stopped answering in red, with how
// long the leader has not heard from it, as `infergate cluster status`
// does. The member here is hung: its raft port takes connections and
// never answers.
func TestStatusPageShowsUnreachableMember(t *testing.T) {
	s := startServer(t, serverOptions{cfg: gateway.DefaultConfig(), files: map[string][]byte{"ctr/1": ctrONNX()}})
	node := attachNode(t, s, "", func(cc *cluster.Config) {
		cc.MaxVoters = 1 // the hung member joins as a non-voter: the leader keeps leading
	})
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	testenv.CheckFor(t, 10*time.Second, func() error {
		return node.JoinLocal(fsm.Member{ID: "hung", RaftAddr: hung.Addr().String(), HTTPAddr: "http://127.0.0.1:1"})
	})
	testenv.CheckFor(t, 10*time.Second, func() error {
		r := s.do(t, fasthttp.MethodGet, "/", nil)
		if r.code != fasthttp.StatusOK {
			return fmt.Errorf("status page: %s", r)
		}
		if !strings.Contains(string(r.body), `<td class="UNAVAILABLE">unreachable (silent `) {
			i := strings.Index(string(r.body), "<td>hung</td>")
			if i < 0 {
				return fmt.Errorf("no row for the hung member")
			}
			return fmt.Errorf("the hung member's row: %.300s; want it unreachable, in red, with its silence", r.body[i:])
		}
		return nil
	})
}
