package pbtest

import "testing"

// TestDescriptorBuilds makes the descriptor, which panics when wrong.
func TestDescriptorBuilds(t *testing.T) {
	for _, name := range []string{"ModelConfigResponse", "ModelStatisticsResponse", "RepositoryIndexResponse", "ModelInferRequest"} {
		if New(name) == nil {
			t.Fatalf("no %s", name)
		}
	}
}
