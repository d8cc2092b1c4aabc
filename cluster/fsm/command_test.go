package fsm

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testSHA = strings.Repeat("0123456789abcdef", 4)

func registerCmd(model string, version int64) Command {
	return Command{Op: OpRegisterVersion, Model: model, Version: version, SHA256: testSHA, Size: 100}
}

func TestCommandValidate(t *testing.T) {
	f := func(c Command, want string) {
		t.Helper()
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("Validate(%+v): got %v; want nil", c, err)
			}
			return
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate(%+v): got %v; want an ErrInvalid containing %q", c, err, want)
		}
	}
	with := func(c Command, edit func(c *Command)) Command {
		edit(&c)
		return c
	}
	reg := registerCmd("resnet-50.v2", 0)

	f(Command{}, `unknown op ""`)
	f(Command{Op: "delete"}, `unknown op "delete"; want register_version, set_alias`)

	// register_version
	f(reg, "")
	f(with(reg, func(c *Command) { c.Version = 7; c.Promote = true }), "")
	f(with(reg, func(c *Command) { c.Config = json.RawMessage(` {"instances": 2} `) }), "")
	f(with(reg, func(c *Command) { c.Created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }), "")
	f(with(reg, func(c *Command) { c.Model = "" }), `register_version: invalid model name ""`)
	f(with(reg, func(c *Command) { c.Model = "a/b" }), `invalid model name "a/b"`)
	f(with(reg, func(c *Command) { c.Model = "a..b" }), `invalid model name "a..b"`)
	f(with(reg, func(c *Command) { c.Version = -1 }), "version -1 is out of range; want 1-999999999999999999, or 0 for the next free number")
	f(with(reg, func(c *Command) { c.Version = maxVersion + 1 }), "version 1000000000000000000 is out of range")
	f(with(reg, func(c *Command) { c.SHA256 = "" }), `sha256 "" is not 64 lowercase hex characters`)
	f(with(reg, func(c *Command) { c.SHA256 = testSHA[1:] }), "is not 64 lowercase hex characters")
	f(with(reg, func(c *Command) { c.SHA256 = strings.ToUpper(testSHA) }), "is not 64 lowercase hex characters")
	f(with(reg, func(c *Command) { c.SHA256 = testSHA[1:] + "g" }), "is not 64 lowercase hex characters")
	f(with(reg, func(c *Command) { c.Size = 0 }), "size 0 is not positive")
	f(with(reg, func(c *Command) { c.Size = -5 }), "size -5 is not positive")
	f(with(reg, func(c *Command) { c.Config = json.RawMessage(`[1]`) }), "config is not a JSON object")
	f(with(reg, func(c *Command) { c.Config = json.RawMessage(`null`) }), "config is not a JSON object")
	f(with(reg, func(c *Command) { c.Config = json.RawMessage(`{"a":`) }), "config is not a JSON object")
	f(with(reg, func(c *Command) { c.Created = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), "created")

	// set_alias
	alias := Command{Op: OpSetAlias, Model: "m", Version: 3, Alias: "canary"}
	f(alias, "")
	f(with(alias, func(c *Command) { c.Alias = AliasProduction }), "")
	f(with(alias, func(c *Command) { c.Alias = "a" + strings.Repeat("b", 62) }), "")
	f(with(alias, func(c *Command) { c.Alias = "a_b-9" }), "")
	f(with(alias, func(c *Command) { c.Model = "-m" }), `set_alias: invalid model name "-m"`)
	f(with(alias, func(c *Command) { c.Version = 0 }), "set_alias: version 0 is out of range; want 1-")
	f(with(alias, func(c *Command) { c.Alias = "" }), `set_alias: alias "" is not valid; use 1-63 lowercase letters`)
	f(with(alias, func(c *Command) { c.Alias = "Canary" }), `alias "Canary" is not valid`)
	f(with(alias, func(c *Command) { c.Alias = "1st" }), `alias "1st" is not valid`)
	f(with(alias, func(c *Command) { c.Alias = "a.b" }), `alias "a.b" is not valid`)
	f(with(alias, func(c *Command) { c.Alias = "a" + strings.Repeat("b", 63) }), "is not valid")

	// rollback
	f(Command{Op: OpRollback, Model: "m"}, "")
	f(Command{Op: OpRollback}, `rollback: invalid model name ""`)

	// retire_version
	f(Command{Op: OpRetireVersion, Model: "m", Version: 1}, "")
	f(Command{Op: OpRetireVersion, Model: "m"}, "retire_version: version 0 is out of range")
	f(Command{Op: OpRetireVersion, Model: "m m", Version: 1}, `retire_version: invalid model name "m m"`)

	// set_member
	member := Command{Op: OpSetMember, Member: &Member{ID: "n1", RaftAddr: "127.0.0.1:7000", HTTPAddr: "http://127.0.0.1:8080"}}
	f(member, "")
	f(with(member, func(c *Command) {
		c.Member = &Member{ID: "n1", RaftAddr: "x", HTTPAddr: "https://gw.example:443/", Voter: true}
	}), "")
	f(with(member, func(c *Command) { c.Member = nil }), "set_member: member is required")
	f(with(member, func(c *Command) { c.Member = &Member{RaftAddr: "x", HTTPAddr: "http://a"} }), "set_member: member.id is required")
	f(with(member, func(c *Command) { c.Member = &Member{ID: "n1", HTTPAddr: "http://a"} }), `set_member: member "n1": raft_addr is required`)
	f(with(member, func(c *Command) { c.Member = &Member{ID: "n1", RaftAddr: "x"} }), `member "n1": http_addr "" is not an http:// or https:// URL with a host`)
	f(with(member, func(c *Command) { c.Member = &Member{ID: "n1", RaftAddr: "x", HTTPAddr: "127.0.0.1:8080"} }), `http_addr "127.0.0.1:8080" is not`)
	f(with(member, func(c *Command) { c.Member = &Member{ID: "n1", RaftAddr: "x", HTTPAddr: "ftp://a"} }), `http_addr "ftp://a" is not`)
	f(with(member, func(c *Command) { c.Member = &Member{ID: "n1", RaftAddr: "x", HTTPAddr: "http://"} }), `http_addr "http://" is not`)
	f(with(member, func(c *Command) { c.Member = &Member{ID: "n1", RaftAddr: "x", HTTPAddr: "http://a b"} }), `http_addr "http://a b" is not`)

	// remove_member
	f(Command{Op: OpRemoveMember, Member: &Member{ID: "n1"}}, "")
	f(Command{Op: OpRemoveMember}, "remove_member: member.id is required")
	f(Command{Op: OpRemoveMember, Member: &Member{}}, "remove_member: member.id is required")
}

func TestCommandEncodeDecode(t *testing.T) {
	f := func(c Command) {
		t.Helper()
		b, err := c.Encode()
		if err != nil {
			t.Fatalf("Encode(%+v): %v", c, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("Decode(Encode(c)): got %+v; want %+v", got, c)
		}
	}
	c := registerCmd("m", 4)
	c.Created = time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC)
	c.Origin = "n1"
	c.Config = json.RawMessage(`{"instances":2}`)
	c.Promote = true
	f(c)
	f(registerCmd("m", 0))
	f(Command{Op: OpSetAlias, Model: "m", Version: 2, Alias: "canary"})
	f(Command{Op: OpRollback, Model: "m"})
	f(Command{Op: OpSetMember, Member: &Member{ID: "n1", RaftAddr: "a:1", HTTPAddr: "http://a:2", Voter: true}})
	f(Command{Op: OpRemoveMember, Member: &Member{ID: "n1"}})

	b, err := (&Command{Op: OpRollback, Model: "m"}).Encode()
	if want := `{"op":"rollback","model":"m"}`; err != nil || string(b) != want {
		t.Fatalf("Encode(rollback): got %s, %v; want %s", b, err, want)
	}
	if _, err := (&Command{Op: OpRollback}).Encode(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Encode(invalid): got %v; want ErrInvalid", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		_, err := Decode([]byte(in))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Decode(%q): got %v; want an ErrInvalid containing %q", in, err, want)
		}
	}
	f(``, "cannot decode 0 bytes: EOF")
	f(`garbage`, "invalid character")
	f(`{"op":"rollback"`, "unexpected EOF")
	f(`{"op":"rollback","modle":"m"}`, `unknown field "modle"`)
	f(`{"op":"set_member","member":{"id":"a","port":1}}`, `unknown field "port"`)
	f(`{"op":"rollback"} {}`, "trailing data")
	f(`{"op":"rollback"}}`, "trailing data")
	f(`{"op":"retire_version","version":"1"}`, "cannot unmarshal string")
	f(`[]`, "cannot unmarshal array")

	if _, err := Decode([]byte(" {\"op\":\"rollback\"}\n")); err != nil {
		t.Fatalf("Decode with white space around: got %v; want nil", err)
	}
}
