package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/infergate/infergate/trafficlog/kafka"
	"github.com/infergate/infergate/trainer"
)

// gatewayFlags are what train and trainer share: the nodes, their
// tokens, and where the traffic is read (the nodes' logs or a Kafka
// topic).
type gatewayFlags struct {
	addrs, token, inferToken, kafkaBrokers, kafkaTopic string
	tls                                                *tlsClientFlags
	kafkaSec                                           *kafkaSecurityFlags
}

// addGatewayFlags defines the flags on fs; addrHelp says what --addr is
// for in the command.
func addGatewayFlags(fs *flag.FlagSet, addrHelp string) *gatewayFlags {
	f := &gatewayFlags{}
	fs.StringVar(&f.addrs, "addr", "127.0.0.1:8080", addrHelp+"; without a scheme, https:// when --ca-cert or --client-cert (or their variables) are given, else http://")
	fs.StringVar(&f.token, "token", "", "the admin token (default $INFERGATE_ADMIN_TOKEN)")
	fs.StringVar(&f.token, "admin-token", "", "the same as --token")
	fs.StringVar(&f.inferToken, "inference-token", "", "the token of /v2/models calls, for gateways started with --inference-token (default $INFERGATE_INFERENCE_TOKEN)")
	fs.StringVar(&f.kafkaBrokers, "kafka-brokers", "", "read the traffic from a Kafka topic (serve --traffic-kafka-brokers) instead of the nodes' logs: seed brokers, host:port, comma-separated")
	fs.StringVar(&f.kafkaTopic, "kafka-topic", "infergate-traffic", "the Kafka topic of the traffic log")
	f.tls = addTLSClientFlags(fs)
	f.kafkaSec = addKafkaSecurityFlags(fs, "kafka-")
	return f
}

// gateway returns the nodes' client, the tokens defaulting to the
// environment's, each call bounded by timeout.
func (f *gatewayFlags) gateway(timeout time.Duration) (*trainer.Gateway, error) {
	nodes := splitAddrs(f.addrs)
	if len(nodes) == 0 {
		return nil, fmt.Errorf("--addr %q: name a node", f.addrs)
	}
	for i, n := range nodes {
		var err error
		if nodes[i], err = f.tls.baseURL("--addr", n); err != nil {
			return nil, err
		}
	}
	if f.token == "" {
		f.token = os.Getenv("INFERGATE_ADMIN_TOKEN")
	}
	if f.inferToken == "" {
		f.inferToken = os.Getenv("INFERGATE_INFERENCE_TOKEN")
	}
	hc, err := f.tls.httpClient(timeout)
	if err != nil {
		return nil, err
	}
	return &trainer.Gateway{Nodes: nodes, Token: f.token, InferenceToken: f.inferToken, HTTP: hc}, nil
}

// kafkaReader opens the Kafka topic's reader, or returns nil when the
// traffic is read from the nodes' logs.
func (f *gatewayFlags) kafkaReader(ctx context.Context) (*kafka.Reader, error) {
	if err := f.kafkaSec.check(f.kafkaBrokers); err != nil {
		return nil, err
	}
	if f.kafkaBrokers == "" {
		return nil, nil
	}
	sec, err := f.kafkaSec.security(cliLog.Logf)
	if err != nil {
		return nil, err
	}
	return kafka.NewReader(ctx, splitAddrs(f.kafkaBrokers), f.kafkaTopic, sec)
}
