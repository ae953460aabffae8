// Command jsonpatch-diff is the Go side of test/diff/t_jsonpatch.sh: it runs the cases of a
// JSON-lines file through the library Velero uses (Debian's evanphx/json-patch v5, GOPATH mode)
// and prints one result line per case. Inputs are first printed the way Velero's Go would hand
// them over (encoding/json of the decoded values: integers as int64, other numbers as float64);
// with -canon FILE those canonical cases are written out for the C side to read.
//
// Case kinds: apply {doc, patch}, merge {doc, patch}, create {a, b}, fmt {v: number},
// pf {s: string} (strconv.ParseFloat accepts?), glob {p, s, sep} (gobwas/glob as Velero compiles
// groupResource with '.' and namespaces without separators).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/gobwas/glob"
)

type result struct {
	Ok    bool            `json:"ok"`
	R     json.RawMessage `json:"r,omitempty"`
	Class string          `json:"class,omitempty"`
	S     string          `json:"s,omitempty"`
	S32   string          `json:"s32,omitempty"`
}

// conv turns decoded numbers into what a Go program holding the object has: int64 when the text
// is an integer that fits, float64 otherwise.
func conv(v interface{}) interface{} {
	switch t := v.(type) {
	case json.Number:
		s := string(t)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i
			}
		}
		f, _ := strconv.ParseFloat(s, 64)
		return f
	case map[string]interface{}:
		for k, e := range t {
			t[k] = conv(e)
		}
	case []interface{}:
		for i, e := range t {
			t[i] = conv(e)
		}
	}
	return v
}

// canon prints raw as Go would, twice: "-0.0" becomes float64 -0, printed "-0", which reads back
// as the integer 0 (as it would for Velero, and for jansson on the C side); the second pass is
// the fixed point both sides hold.
func canon(raw json.RawMessage) []byte { return canon1(canon1(raw)) }

func canon1(raw json.RawMessage) []byte {
	if raw == nil {
		return []byte("null")
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v interface{}
	if err := d.Decode(&v); err != nil {
		panic(err)
	}
	b, err := json.Marshal(conv(v))
	if err != nil {
		panic(err)
	}
	return b
}

func class(err error) string {
	if errors.Is(err, jsonpatch.ErrTestFailed) {
		return "test"
	}
	if errors.Is(err, jsonpatch.ErrMissing) {
		return "missing"
	}
	return "failed"
}

// guarded runs f; a panic inside the library is reported as the class "crash".
func guarded(f func() ([]byte, error)) (res result) {
	defer func() {
		if r := recover(); r != nil {
			res = result{Ok: false, Class: "crash"}
		}
	}()
	out, err := f()
	if err != nil {
		return result{Ok: false, Class: class(err)}
	}
	return result{Ok: true, R: json.RawMessage(out)}
}

func main() {
	in := flag.String("in", "", "cases (JSON lines)")
	canonOut := flag.String("canon", "", "write the canonical cases here")
	flag.Parse()
	f, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var cw *bufio.Writer
	if *canonOut != "" {
		cf, err := os.Create(*canonOut)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer cf.Close()
		cw = bufio.NewWriter(cf)
		defer cw.Flush()
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var c map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			fmt.Fprintln(os.Stderr, "bad case:", err)
			os.Exit(2)
		}
		var t string
		json.Unmarshal(c["t"], &t)
		var res result
		canonCase := map[string]interface{}{"t": t}
		switch t {
		case "apply":
			doc, patch := canon(c["doc"]), canon(c["patch"])
			canonCase["doc"], canonCase["patch"] = json.RawMessage(doc), json.RawMessage(patch)
			canonCase["ptext"] = string(patch)
			res = guarded(func() ([]byte, error) {
				p, err := jsonpatch.DecodePatch(patch)
				if err != nil {
					return nil, fmt.Errorf("decode: %w", err)
				}
				return p.Apply(doc)
			})
			if !res.Ok && res.Class == "failed" {
				if _, err := jsonpatch.DecodePatch(patch); err != nil {
					res.Class = "decode"
				}
			}
		case "merge":
			doc, patch := canon(c["doc"]), canon(c["patch"])
			canonCase["doc"], canonCase["patch"] = json.RawMessage(doc), json.RawMessage(patch)
			res = guarded(func() ([]byte, error) { return jsonpatch.MergePatch(doc, patch) })
			res.Class = ""
		case "create":
			a, b := canon(c["a"]), canon(c["b"])
			canonCase["a"], canonCase["b"] = json.RawMessage(a), json.RawMessage(b)
			res = guarded(func() ([]byte, error) { return jsonpatch.CreateMergePatch(a, b) })
			res.Class = ""
		case "fmt":
			var f float64
			json.Unmarshal(c["v"], &f)
			canonCase["v"] = json.RawMessage(c["v"])
			b, _ := json.Marshal(f)
			res = result{Ok: true, S: string(b), S32: strconv.FormatFloat(f, 'g', -1, 32)}
		case "pf":
			var s string
			json.Unmarshal(c["s"], &s)
			canonCase["s"] = s
			_, err := strconv.ParseFloat(s, 64)
			res = result{Ok: err == nil}
		case "glob":
			var p, s, sep string
			json.Unmarshal(c["p"], &p)
			json.Unmarshal(c["s"], &s)
			json.Unmarshal(c["sep"], &sep)
			canonCase["p"], canonCase["s"], canonCase["sep"] = p, s, sep
			var g glob.Glob
			if sep != "" {
				g, err = glob.Compile(p, []rune(sep)...)
			} else {
				g, err = glob.Compile(p)
			}
			if err != nil {
				res = result{Ok: false, Class: "compile"}
			} else {
				// gobwas/glob panics on a few patterns (its optimiser slices past the input)
				res = guarded(func() ([]byte, error) {
					if g.Match(s) {
						return []byte("true"), nil
					}
					return nil, errors.New("no match")
				})
				res = result{Ok: res.Ok, Class: map[bool]string{true: "crash"}[res.Class == "crash"]}
			}
		default:
			fmt.Fprintln(os.Stderr, "unknown case kind", t)
			os.Exit(2)
		}
		line, _ := json.Marshal(res)
		out.Write(line)
		out.WriteByte('\n')
		if cw != nil {
			cl, _ := json.Marshal(canonCase)
			cw.Write(cl)
			cw.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
