package registry

import (
	"strings"
	"testing"
)

// A type error in a list's second entry (here input[1].dims, line 10)
// names that entry's line: checkTree refuses it with the path's indices,
// where decoding would give input.dims, the first entry's line (5).
func TestPbtxtTypeErrorInSecondEntryNamesItsLine(t *testing.T) {
	text := "input [\n {\n name: \"a\"\n data_type: TYPE_FP32\n dims: [ 1 ]\n },\n {\n name: \"b\"\n data_type: TYPE_FP32\n dims: [ \"x\" ]\n }\n]\n"
	_, err := ParseModelConfigText([]byte(text))
	if err == nil || !strings.Contains(err.Error(), "config.pbtxt line 10: ") {
		t.Fatalf("got %v; want the error at line 10, the second entry's dims", err)
	}
}
