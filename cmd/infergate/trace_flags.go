package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/infergate/infergate/gateway"
)

// traceConfigFlag is serve's --trace-config, Triton's spelling of the
// trace settings, so that a Triton command line carries over:
// SETTING=VALUE for rate, level, count and mode, and MODE,SETTING=VALUE
// for triton,file, triton,log-frequency, opentelemetry,url and
// opentelemetry,resource (and the batch span processor's settings at
// infergate's fixed values). Each use sets what it names at once, so
// that a later flag, --trace-rate or --trace-config rate=, wins.
type traceConfigFlag struct {
	trace    *gateway.TraceConfig
	resource *repeatedList
}

func (f traceConfigFlag) String() string { return "" }

func (f traceConfigFlag) Set(s string) error {
	scope, kv, scoped := strings.Cut(s, ",")
	if !scoped {
		scope, kv = "", s
	}
	name, value, ok := strings.Cut(kv, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q: give SETTING=VALUE, or triton,SETTING=VALUE or opentelemetry,SETTING=VALUE, as Triton's --trace-config", s)
	}
	integer := func(least int64) (int64, error) {
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < least {
			return 0, fmt.Errorf("%s=%q: give an integer of at least %d", name, value, least)
		}
		return n, nil
	}
	var err error
	t := f.trace
	switch scope + "," + name {
	case ",rate":
		t.Rate, err = integer(0)
	case ",count":
		t.Count, err = integer(-1)
	case ",level":
		t.Level = value
	case ",mode":
		t.Mode = value
	case "triton,file":
		t.File = value
	case "triton,log-frequency":
		t.LogFrequency, err = integer(0)
	case "opentelemetry,url":
		if !strings.Contains(value, "://") {
			value = "http://" + value // Triton's form: host:port/path
		}
		t.OTelURL = value
	case "opentelemetry,resource":
		err = f.resource.Set(value)
	case "opentelemetry,bsp_max_queue_size", "opentelemetry,bsp_max_export_batch_size", "opentelemetry,bsp_schedule_delay":
		fixed := map[string]string{"bsp_max_queue_size": "2048", "bsp_max_export_batch_size": "512", "bsp_schedule_delay": "5000"}[name]
		if value != fixed {
			err = fmt.Errorf("%s=%s: infergate's batch span processor is fixed at Triton's defaults (bsp_max_queue_size 2048, bsp_max_export_batch_size 512, bsp_schedule_delay 5000 ms); leave it out or give %s", name, value, fixed)
		}
	default:
		where := "a setting"
		if scoped {
			where = "a " + scope + " setting"
		}
		return fmt.Errorf("%q is not %s infergate knows: it takes rate, level, count, mode, triton,file, triton,log-frequency, opentelemetry,url and opentelemetry,resource", s, where)
	}
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	return nil
}
