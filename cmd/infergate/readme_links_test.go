package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/infergate/infergate/internal/testenv"
)

// headingSlugs returns the anchors GitHub gives the headings of a
// Markdown text (those outside code blocks) and the headings' text.
func headingSlugs(text string) (map[string]bool, []string) {
	slugs := map[string]bool{}
	seen := map[string]int{}
	var titles []string
	notWord := regexp.MustCompile(`[^\p{L}\p{N}_\- ]`)
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			continue
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		titles = append(titles, title)
		slug := strings.ToLower(notWord.ReplaceAllString(title, ""))
		slug = strings.ReplaceAll(slug, " ", "-")
		if seen[slug] > 0 { // GitHub numbers repeated headings: x, x-1, x-2
			slugs[fmt.Sprintf("%s-%d", slug, seen[slug])] = true
		} else {
			slugs[slug] = true
		}
		seen[slug]++
	}
	return slugs, titles
}

// TestREADMELinks checks that the links of README.md and BENCHMARKS.md
// lead somewhere: an anchor names a heading of its file, a relative path
// exists, and a section of BENCHMARKS.md that README cites by its title
// ("BENCHMARKS.md, \"Response compression\"") is one of its headings.
func TestREADMELinks(t *testing.T) {
	root := testenv.RepoRoot(t)
	docs := []string{"README.md", "BENCHMARKS.md"}
	texts := map[string]string{}
	slugs := map[string]map[string]bool{}
	titles := map[string][]string{}
	for _, name := range docs {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatalf("cannot read %s: %v", name, err)
		}
		texts[name] = string(b)
		slugs[name], titles[name] = headingSlugs(string(b))
	}

	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	links := 0
	for _, name := range docs {
		for _, m := range link.FindAllStringSubmatch(texts[name], -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links++
			path, anchor, _ := strings.Cut(target, "#")
			if path == "" {
				path = name
			}
			if _, err := os.Stat(filepath.Join(root, path)); err != nil {
				t.Errorf("%s links to %s, which does not exist", name, target)
				continue
			}
			if anchor == "" {
				continue
			}
			if slugs[path] == nil {
				t.Errorf("%s links to %s: anchors are checked in %v only", name, target, docs)
			} else if !slugs[path][anchor] {
				t.Errorf("%s links to %s, but %s has no heading with the anchor %q", name, target, path, anchor)
			}
		}
	}
	if links < 3 {
		t.Fatalf("found %d relative links in %v; want at least 3 (did the link form change?)", links, docs)
	}

	cited := regexp.MustCompile(`BENCHMARKS\.md,\s+"([^"]+)"`)
	for _, m := range cited.FindAllStringSubmatch(texts["README.md"], -1) {
		title := strings.Join(strings.Fields(m[1]), " ")
		found := false
		for _, h := range titles["BENCHMARKS.md"] {
			if strings.Contains(h, title) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("README.md cites BENCHMARKS.md, %q, which is none of its headings", title)
		}
	}
}
