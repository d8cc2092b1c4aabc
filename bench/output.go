package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/infergate/infergate/internal/durable"
)

// writeHTML writes r as one self-contained HTML page. html.go sets it in
// its init; SaveHTML fails with ErrNoHTML while it is nil.
var writeHTML func(w io.Writer, r *Report) error

// SaveJSON writes r as indented JSON to path, through a temporary file
// renamed into place.
func SaveJSON(path string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode the report: %w", err)
	}
	return writeFile(path, append(b, '\n'))
}

// LoadJSON reads a report that SaveJSON wrote. Unknown fields are kept
// out, so a report from a newer infergate reads as far as this one knows
// it; a file that is not a report is an error.
func LoadJSON(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s is not a bench report (JSON, as --json writes it): %w", path, err)
	}
	if len(r.Runs) == 0 && r.Env.StartedAt == "" {
		return nil, fmt.Errorf("%s is not a bench report: it has no runs and no environment", path)
	}
	return &r, nil
}

// SaveHTML writes r as an HTML page to path.
func SaveHTML(path string, r *Report) error {
	if writeHTML == nil {
		return fmt.Errorf("cannot write %s: %w (bench/html.go is missing); use --json", path, ErrNoHTML)
	}
	var b bytes.Buffer
	if err := writeHTML(&b, r); err != nil {
		return fmt.Errorf("cannot write the HTML report: %w", err)
	}
	return writeFile(path, b.Bytes())
}

// writeFile writes data to path through a temporary file in the same
// directory, so a reader never sees half a report.
func writeFile(path string, data []byte) error {
	if err := durable.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}
