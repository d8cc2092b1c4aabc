package trafficlog

import (
	"strconv"
	"time"

	"github.com/infergate/infergate/oip"
)

// AppendJSON appends e as one JSON line (GET /v1/traffic's format): its
// position in the log first when pos is 0 or more, its kind, time, id,
// model, version, arm and unit, its tensors (with oip's JSON for their
// data) and its outcome.
func AppendJSON(dst []byte, pos int64, e *Event) []byte {
	dst = append(dst, '{')
	if pos >= 0 {
		dst = append(dst, `"position":`...)
		dst = strconv.AppendInt(dst, pos, 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"kind":"`...)
	dst = append(dst, e.Kind.String()...)
	dst = append(dst, `","time":"`...)
	dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","id":`...)
	dst = oip.AppendJSONString(dst, e.ID)
	dst = append(dst, `,"model":`...)
	dst = oip.AppendJSONString(dst, e.Model)
	if e.Version != 0 {
		dst = append(dst, `,"version":`...)
		dst = strconv.AppendInt(dst, e.Version, 10)
	}
	if e.Arm != "" {
		dst = append(dst, `,"arm":`...)
		dst = oip.AppendJSONString(dst, e.Arm)
	}
	if e.Unit != "" {
		dst = append(dst, `,"unit":`...)
		dst = oip.AppendJSONString(dst, e.Unit)
	}
	for _, side := range []struct {
		key string
		ts  []oip.Tensor
	}{{`,"inputs":[`, e.Inputs}, {`,"outputs":[`, e.Outputs}} {
		if e.Kind == Feedback {
			break
		}
		dst = append(dst, side.key...)
		for i := range side.ts {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = oip.AppendTensorJSON(dst, &side.ts[i])
		}
		dst = append(dst, ']')
	}
	if e.HasLabel {
		dst = append(dst, `,"label":`...)
		dst = strconv.AppendFloat(dst, e.Label, 'g', -1, 64)
	}
	if e.HasReward {
		dst = append(dst, `,"reward":`...)
		dst = strconv.AppendFloat(dst, e.Reward, 'g', -1, 64)
	}
	return append(dst, "}\n"...)
}
