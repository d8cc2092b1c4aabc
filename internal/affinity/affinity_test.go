package affinity

import (
	"runtime"
	"slices"
	"testing"
)

func TestFormat(t *testing.T) {
	f := func(cpus []int, want string) {
		t.Helper()
		if got := Format(cpus); got != want {
			t.Errorf("Format(%v) = %q; want %q", cpus, got, want)
		}
	}
	f(nil, "")
	f([]int{3}, "3")
	f([]int{0, 1, 2, 3}, "0-3")
	f([]int{0, 1, 2, 5, 7, 8}, "0-2,5,7-8")
}

func TestParse(t *testing.T) {
	f := func(s string, want []int) {
		t.Helper()
		got, err := Parse(s)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	f("0", []int{0})
	f("3,1", []int{3, 1})
	f("0-3", []int{0, 1, 2, 3})
	f(" 0-2, 5,7-8", []int{0, 1, 2, 5, 7, 8})
	f(Format([]int{0, 1, 2, 5, 7, 8}), []int{0, 1, 2, 5, 7, 8})
	for _, bad := range []string{"", "x", "-1", "3-1", "1-", "1,,2", "0-99999999"} {
		if got, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v; want an error", bad, got)
		}
	}
}

// TestPinThread moves a locked thread onto one CPU, reads it back, and
// lets the thread end with its goroutine.
func TestPinThread(t *testing.T) {
	if runtime.GOOS != "linux" {
		if _, err := Allowed(); err != ErrUnsupported {
			t.Fatalf("Allowed: %v; want ErrUnsupported", err)
		}
		return
	}
	all, err := Allowed()
	if err != nil || len(all) == 0 {
		t.Fatalf("Allowed: %v, %v", all, err)
	}
	cpu := all[len(all)-1]
	got := make(chan []int, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends here
		if err := PinThread([]int{cpu}); err != nil {
			t.Error(err)
		}
		a, _ := Allowed()
		got <- a
	}()
	if a := <-got; !slices.Equal(a, []int{cpu}) {
		t.Fatalf("pinned thread may run on %v; want [%d]", a, cpu)
	}
	if a, _ := Allowed(); !slices.Equal(a, all) {
		t.Fatalf("this thread now may run on %v; want %v still", a, all)
	}
	if err := PinThread([]int{1 << 20}); err == nil {
		t.Fatal("pinned a thread onto CPU 1048576")
	}
}
