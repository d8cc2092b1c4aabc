package gateway

import (
	"errors"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/infergate/infergate/cluster"
	"github.com/infergate/infergate/cluster/fsm"
)

// audit logs a change an admin call made, on the node the client called
// ("admin: 10.0.0.5 promoted model ..."), so that the log answers who
// changed what and when. Writes a follower forwards to the leader are
// logged where the client's call came in, once.
func (s *Server) audit(ctx *fasthttp.RequestCtx, format string, args ...any) {
	s.auditFrom(ctx.RemoteIP().String(), format, args...)
}

// auditFrom is audit for a call from client, an address as the line
// gives it ("10.0.0.5", "10.0.0.5 (gRPC)").
func (s *Server) auditFrom(client, format string, args ...any) {
	s.logf("admin: %s %s", client, fmt.Sprintf(format, args...))
}

// writeFailed maps the error of an admin write for its client
// (clusterError). A write whose outcome is unknown (it reached the leader,
// which was lost before it confirmed it) may have changed the cluster, so
// it is audited as one that may have: "admin: 10.0.0.5 may have promoted
// model ...", format being the participle phrase audit would have
// logged. Other errors changed nothing and are not logged.
func (s *Server) writeFailed(ctx *fasthttp.RequestCtx, err error, format string, args ...any) error {
	if errors.Is(err, cluster.ErrUnknownOutcome) {
		s.audit(ctx, "may have "+format+" (the leader was lost before it confirmed the write: read the state back to know)", args...)
	}
	return clusterError(err)
}

// describeCommand says in words what applying c did; res is its result,
// nil when it is not known.
func describeCommand(c *fsm.Command, res *fsm.Result) string {
	switch c.Op {
	case fsm.OpSetAlias:
		if c.Alias == fsm.AliasProduction {
			return fmt.Sprintf("promoted model %q version %d to production", c.Model, c.Version)
		}
		return fmt.Sprintf("pointed alias %q of model %q at version %d", c.Alias, c.Model, c.Version)
	case fsm.OpRollback:
		if res == nil {
			return fmt.Sprintf("rolled model %q back", c.Model)
		}
		return fmt.Sprintf("rolled model %q back: production is version %d", c.Model, res.Version)
	case fsm.OpRetireVersion:
		return fmt.Sprintf("retired model %q version %d", c.Model, c.Version)
	case fsm.OpSetExperiment:
		arms := make([]string, len(c.Experiment.Arms))
		for i, a := range c.Experiment.Arms {
			arms[i] = fmt.Sprintf("%s=%d:%d", a.Name, a.Version, a.Weight)
		}
		return fmt.Sprintf("set model %q's experiment %q: %s", c.Model, c.Experiment.Name, strings.Join(arms, ", "))
	case fsm.OpEndExperiment:
		return fmt.Sprintf("ended model %q's experiment", c.Model)
	case fsm.OpSetShadow:
		return fmt.Sprintf("set model %q's shadow: version %d, %g%% of its requests", c.Model, c.Shadow.Version, c.Shadow.Percent)
	case fsm.OpEndShadow:
		return fmt.Sprintf("ended model %q's shadow", c.Model)
	case fsm.OpRemoveModel:
		return fmt.Sprintf("removed model %q from the cluster (ended its experiment and shadow, dropped its aliases, retired every version)", c.Model)
	}
	return fmt.Sprintf("applied %s", c.Op)
}
