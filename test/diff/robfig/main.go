// Command robfig-diff is the Go half of test/diff/t_robfig.sh: it generates cron expressions
// from a seed, runs each through the real robfig/cron v3 (Debian's golang-github-robfig-cron-dev,
// built in GOPATH mode) and through kcmdr's C driver (test/diff/robfig/driver.c, linked against
// src/cron.c and src/tz.c), and reports every expression on which the two disagree: accepted by
// one side only, a different error message, or a different activation time.
//
// Protocol with the driver, one line per expression each way:
//
//	in:  <spec as hex> <start> <start> ...        (Unix seconds)
//	out: OK <n1>,<n2>,<n3> <n1>,<n2>,<n3> ...     (successive Next per start; 0 = zero time)
//	     ERR <message, bytes outside 0x20-0x7e and '\' as \xNN>
package main

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron"
)

var (
	driver   = flag.String("driver", "", "the C driver binary")
	seed     = flag.Int64("seed", 20250117, "generator seed")
	count    = flag.Int("n", 5000, "expressions")
	starts   = flag.Int("starts", 6, "start times per expression")
	nexts    = flag.Int("nexts", 3, "successive Next calls per start time")
	show     = flag.Int("show", 25, "differences to print")
	dump     = flag.Bool("dump", false, "print every expression with the Go result")
	allZones = flag.Bool("allzones", false, "draw zones from every file under /usr/share/zoneinfo (slow; for exploring)")
)

// Zones robfig can load, chosen for their DST rules: US and EU rules, a 30-minute DST shift
// (Lord Howe), a 15-minute offset and a one-off 15-minute change (Kathmandu, 1986), DST that
// used to start at midnight (Sao Paulo), negative DST (Dublin, Casablanca), a 2-hour DST (Troll),
// a day skipped at the date line (Apia, 2011), +13:45 (Chatham), and names Go accepts oddly.
var goodZones = []string{
	"America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu",
	"America/Sao_Paulo", "Europe/Berlin", "Europe/Dublin", "Africa/Casablanca",
	"Antarctica/Troll", "Pacific/Apia", "Pacific/Chatham", "America/St_Johns",
	"Asia/Kolkata", "America/Santiago", "Pacific/Kiritimati", "Etc/GMT+5", "UTC", "Local", "",
	"right/Europe/London", "Europe/./London", "Europe//London", "./UTC", "US/Eastern",
}

// Names robfig refuses, each for its own reason.
var badZones = []string{
	"Mars/Olympus", "../etc/passwd", "/etc/localtime", "\\UTC", "America", "utc", "zone.tab",
	"Europe/London/", "Europe/Lond\u00f3n", "europe/london", "..", "Etc/GMT+15", "a\x00b",
	"Europe/Berlin..", "tzdata.zi",
}

var bigNumbers = []string{
	"2147483647", "2147483648", "4294967295", "4294967296", "9223372036854775807",
	"9223372036854775808", "18446744073709551615", "18446744073709551616",
	"99999999999999999999", "000000000000000000005", "-9223372036854775808",
	"-9223372036854775809", "1844674407370955161x", "x1844674407370955161",
}

var steps = []string{
	"1", "2", "3", "4", "5", "6", "7", "10", "12", "13", "15", "20", "23", "30", "45", "59", "60",
	"61", "0", "00", "100", "+2", "-1", "-0", "02", "x", "", "1.5", "\u0663",
}

type bounds struct {
	min, max int
	names    []string
}

var fieldBounds = []bounds{
	{0, 59, nil}, {0, 23, nil}, {1, 31, nil},
	{1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{0, 6, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// clean: only what robfig accepts (huge steps included), so that most expressions get as far as
// Next; otherwise anything goes.
type gen struct {
	r     *rand.Rand
	clean *bool
}

func (g gen) pick(list []string) string { return list[g.r.Intn(len(list))] }
func (g gen) pct(p int) bool            { return g.r.Intn(100) < p }

func (g gen) number(b bounds) string {
	if *g.clean {
		return strconv.Itoa(b.min + g.r.Intn(b.max-b.min+1))
	}
	switch n := g.r.Intn(100); {
	case n < 80:
		return strconv.Itoa(b.min + g.r.Intn(b.max-b.min+1))
	case n < 88:
		return strconv.Itoa([]int{b.min - 1, b.max + 1, 60, 99, 7, 0, 32, 13, 24}[g.r.Intn(9)])
	case n < 96:
		return g.pick(bigNumbers)
	default:
		return g.pick([]string{"+5", "-5", "-0", "+0", "007", "0x1", "1e1", "", " ", "\u0663", "5\u00a0"})
	}
}

func (g gen) name(b bounds) string {
	s := b.names[g.r.Intn(len(b.names))]
	k := g.r.Intn(6)
	if *g.clean && k == 3 {
		k = 0
	}
	switch k {
	case 0:
		return strings.ToUpper(s)
	case 1:
		return strings.ToUpper(s[:1]) + s[1:]
	case 2:
		if strings.ContainsRune(s, 'i') {
			return strings.Replace(strings.ToUpper(s), "I", "\u0130", 1) // Go lower-cases U+0130 to 'i'
		}
		if *g.clean {
			return s
		}
		return s + "s"
	case 3:
		return g.pick([]string{"L", "#", "W", "monday", "ja", "JANUARY", "m\u00f6n", "SUN\u200b"})
	}
	return s
}

func (g gen) value(b bounds) string {
	if b.names != nil && g.pct(35) {
		return g.name(b)
	}
	return g.number(b)
}

// one element of a comma list
func (g gen) element(b bounds) string {
	step := func() string {
		if *g.clean {
			if g.pct(10) {
				return g.pick([]string{"2147483647", "2147483648", "4294967296", "9223372036854775807", "000000000000000000005"})
			}
			return g.pick(steps[:17])
		}
		if g.pct(12) {
			return g.pick(bigNumbers)
		}
		return g.pick(steps)
	}
	pair := func() string {
		lo, hi := g.value(b), g.value(b)
		if *g.clean {
			x, y := b.min+g.r.Intn(b.max-b.min+1), b.min+g.r.Intn(b.max-b.min+1)
			if x > y {
				x, y = y, x
			}
			lo, hi = strconv.Itoa(x), strconv.Itoa(y)
		}
		return lo + "-" + hi
	}
	n := g.r.Intn(100)
	if *g.clean && n >= 86 {
		n = 0
	}
	switch {
	case n < 18:
		return "*"
	case n < 22:
		return "?"
	case n < 45:
		return g.value(b)
	case n < 60:
		return pair()
	case n < 70:
		return pair() + "/" + step()
	case n < 76:
		return g.value(b) + "/" + step()
	case n < 86:
		return g.pick([]string{"*", "?"}) + "/" + step()
	default:
		return g.pick([]string{"*-5", "*-x-y", "?-3/2", "*-3/2", "1-2-3", "x-1-2", "1-x-3", "1/2/3",
			"x/1/2", "*/2/x", "/5", "5/", "-5", "5--6", "", "//", "*/", "*/*", "1-/2", "-", "*-",
			"\x00", "5\x00", "1-2-3/4/5"})
	}
}

func (g gen) field(b bounds) string {
	n := 1
	for n < 5 && g.pct(22) {
		n++
	}
	parts := make([]string, n)
	for i := range parts {
		parts[i] = g.element(b)
	}
	s := strings.Join(parts, ",")
	if g.pct(3) {
		s = g.pick([]string{",", ",,", ","}) + s // robfig drops empty list elements
	}
	if g.pct(3) {
		s += ","
	}
	return s
}

func (g gen) space() string {
	if g.pct(90) {
		return " "
	}
	return g.pick([]string{"  ", "\t", " \t ", "\n", "\u00a0", "\u3000", "\u2003", "\u200b", "\x85",
		"\u0085", "\r\n", "\v", "\f", "\u2028"})
}

func (g gen) duration() string {
	if g.pct(25) {
		return g.pick([]string{"0", "+0", "-0", "", " 5s", "5s ", "1e3s", "0x10s", "1h-1m", "1.5h",
			".5s", "5.s", ".s", "-.5s", "1..5s", "00", "5", "1_000s", "\u0661s", "-1s", "+1s",
			"9223372036854775807ns", "9223372036854775808ns", "-9223372036854775808ns",
			"-9223372036854775809ns", "2562047h47m16.854775807s", "2562047h47m16.854775808s",
			"2562048h", "2562047h", "-2562047h47m16.854775808s", "0.0000000000000000000001h",
			"1.00000000000000000000001s", "15552000000000000000000ns", "106751d", "1h 30m",
			"1H", "1S", "1sec", "5m0", "1\u00b5s", "1\u03bcs", "1us", "1\u00b5", "1.000000001s",
			"0.5h0.5m", "999999999ns", "1000000000ns", "1999999999ns", "59.9999999999s",
			"1.9999999999999999999999999999h", "4.5e1s", "\"5s\"", "5s\x00"})
	}
	units := []string{"ns", "us", "\u00b5s", "\u03bcs", "ms", "s", "m", "h"}
	n := 1 + g.r.Intn(3)
	var b strings.Builder
	if g.pct(10) {
		b.WriteString(g.pick([]string{"-", "+"}))
	}
	for i := 0; i < n; i++ {
		switch k := g.r.Intn(10); {
		case k < 6:
			b.WriteString(strconv.Itoa(g.r.Intn(100)))
		case k < 8:
			fmt.Fprintf(&b, "%d.%d", g.r.Intn(10), g.r.Intn(1000))
		case k < 9:
			b.WriteString(strconv.FormatInt(g.r.Int63n(1<<62), 10))
		default:
			b.WriteString(g.pick([]string{".5", "5.", "0.", ".0", "1.0", "007"}))
		}
		if g.pct(95) {
			b.WriteString(g.pick(units))
		} else {
			b.WriteString(g.pick([]string{"d", "", "S", "M", "hr", "sec", "\u00b5", "\u03bc", "y"}))
		}
	}
	return b.String()
}

func (g gen) spec() string {
	prefix := ""
	if g.pct(40) {
		zone := g.pick(goodZones)
		if g.pct(12) {
			zone = g.pick(badZones)
		}
		prefix = g.pick([]string{"CRON_TZ=", "TZ="}) + zone
		sep := " "
		if g.pct(6) {
			sep = g.pick([]string{"  ", " \t", "\u00a0 ", "\t", "", " \u3000"})
		}
		prefix += sep
	}
	var body string
	switch k := g.r.Intn(100); {
	case k < 70:
		*g.clean = g.pct(65)
		defer func() { *g.clean = false }()
		n := 5
		if !*g.clean && g.pct(4) {
			n = g.pick2(4, 6, 0, 1, 7)
		}
		fs := make([]string, n)
		for i := range fs {
			fs[i] = g.field(fieldBounds[i%5])
		}
		var b strings.Builder
		if g.pct(4) {
			b.WriteString(g.space())
		}
		for i, f := range fs {
			if i > 0 && *g.clean {
				b.WriteString(" ")
			} else if i > 0 {
				b.WriteString(g.space())
			}
			b.WriteString(f)
		}
		if g.pct(4) {
			b.WriteString(g.space())
		}
		body = b.String()
	case k < 80:
		body = g.pick([]string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
			"@hourly", "@reboot", "@Daily", "@daily ", " @daily", "@hourlyx", "@every", "@",
			"@every5m", "@every\t5m", "@every  5m", "@EVERY 5m", "@daily\x00"})
	case k < 97:
		body = "@every " + g.duration()
	default:
		body = g.pick([]string{"", " ", "* * * * * *", "TZ=UTC", "CRON_TZ=", "CRON_TZ=UTC\t* * * * *",
			"TZ= * * * * *", "TZ=UTC * * * * ?", "\u00a0* * * * *", "*\u00a0* * * *", "0 0 30 2 *",
			"0 0 31 4,6,9,11 *", "0 0 29 2 *", ", * * * *", "* , * * *", "* * , * *", "* * * , *",
			"* * * * ,", "* * 31 2 ,", "0 0 * * 7", "0 0 0 * *", "59/2147483647 * * * *"})
	}
	return prefix + body
}

func (g gen) pick2(v ...int) int { return v[g.r.Intn(len(v))] }

// Transitions of every zone that loads, 1890-2110 (ZoneBounds; after the file's last transition
// it also reports year boundaries, which do no harm), and the days a zone skipped entirely
// (Apia jumped from -10 to +14 and had no 2011-12-30): robfig's Next loops forever when its day
// loop meets such a day (time.Date gives back the day before), so there is nothing to compare.
func zoneEdges() (edges, skips map[string][]int64) {
	edges, skips = map[string][]int64{}, map[string][]int64{}
	for _, z := range goodZones {
		loc, err := time.LoadLocation(z)
		if err != nil || loc == time.Local || loc == time.UTC {
			continue
		}
		t := time.Date(1890, 1, 1, 0, 0, 0, 0, loc)
		for t.Year() < 2110 {
			_, end := t.ZoneBounds()
			if end.IsZero() || !end.After(t) {
				break
			}
			_, before := end.Add(-time.Second).Zone()
			if _, after := end.Zone(); after-before >= 23*3600 {
				skips[z] = append(skips[z], end.Unix())
			}
			edges[z] = append(edges[z], end.Unix())
			t = end
		}
	}
	return edges, skips
}

// a start from which Next, or the Next calls chained after it (each goes at most six years
// on), could walk over a skipped day
func nearSkip(t int64, skips []int64) bool {
	for _, s := range skips {
		if t > s-20*366*86400 && t <= s+86400 {
			return true
		}
	}
	return false
}

func (g gen) startTimes(spec string, edges, skips map[string][]int64, n int) []int64 {
	var mine, skip []int64
	for z, e := range edges {
		if strings.HasPrefix(spec, "TZ="+z+" ") || strings.HasPrefix(spec, "CRON_TZ="+z+" ") {
			mine, skip = e, skips[z]
		}
	}
	if mine == nil {
		mine = edges[goodZones[g.r.Intn(4)]] // the main DST zones
	}
	out := make([]int64, 0, n)
	for len(out) < n {
		var t int64
		switch k := len(out); {
		case k < n/2: // around a transition
			t = mine[g.r.Intn(len(mine))] + int64(g.pick2(0, -1, 1, -60, -61, -1800, -3600, -3601, -5400,
				-7200, -86400, -86401, 3600, 1800, -2*86400, -31*86400))
		case k == n/2: // pre-1970 (first zone, LMT) or the far future (POSIX footer)
			if g.pct(50) {
				t = -int64(g.r.Intn(70*365*86400)) - 5*365*86400 // 1895-1965
			} else {
				t = 4102444800 + int64(g.r.Intn(200*365*86400)) // 2100-2300
			}
		default: // anywhere in 1970-2100, on a minute boundary half the time
			t = g.r.Int63n(4102444800)
			if g.pct(50) {
				t -= t % 60
			}
		}
		if !nearSkip(t, skip) {
			out = append(out, t)
		}
	}
	return out
}

func esc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '\\' {
			fmt.Fprintf(&b, "\\x%02x", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// A field that matches nothing (an empty list such as ",") sends robfig's Next minute by minute
// through five years before it gives the zero time: up to 3.5 s per call in a zone past 2037.
// kcmdr answers at once. The first realRuns such calls in UTC (about 0.1 s each) go to robfig
// for real; for the others the harness answers for it.
const realRuns = 4

var neverRuns int

func never(s *cron.SpecSchedule) bool {
	const star = 1 << 63
	dom, dow := s.Dom&^star, s.Dow&^star
	days := dom == 0 && dow == 0
	if (s.Dom|s.Dow)&star != 0 {
		days = dom == 0 || dow == 0
	}
	return s.Minute&^star == 0 || s.Hour&^star == 0 || s.Month&^star == 0 || days
}

// the Go side of one expression, in the driver's format
func goResult(spec string, startList []int64) (res string, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			res, panicked = fmt.Sprintf("PANIC %v", p), true
		}
	}()
	s, err := cron.ParseStandard(spec)
	if err != nil {
		// a C string cannot hold NUL: the C side writes it as the four characters \x00
		return "ERR " + esc(strings.ReplaceAll(err.Error(), "\x00", `\x00`)), false
	}
	var b strings.Builder
	b.WriteString("OK")
	for _, st := range startList {
		b.WriteByte(' ')
		if ss, ok := s.(*cron.SpecSchedule); ok && never(ss) {
			if ss.Location != time.Local || neverRuns >= realRuns {
				b.WriteByte('0')
				continue
			}
			neverRuns++
		}
		t := time.Unix(st, 0).UTC()
		for k := 0; k < *nexts; k++ {
			n := s.Next(t)
			if k > 0 {
				b.WriteByte(',')
			}
			// the zero time, and 1970-01-01T00:00:00Z which the C side cannot tell from it
			if n.IsZero() || n.Unix() == 0 {
				b.WriteByte('0')
				break
			}
			b.WriteString(strconv.FormatInt(n.Unix(), 10))
			t = n
		}
	}
	return b.String(), false
}

// Messages that may differ: where Go reports how reading a zone file failed (a directory, not
// TZif), kcmdr words it its own way; the expression must still be rejected.
func sameMessage(goMsg, cMsg string) bool {
	if goMsg == cMsg {
		return true
	}
	if strings.HasPrefix(goMsg, "provided bad location ") && strings.HasPrefix(cMsg, "provided bad location ") &&
		!strings.Contains(goMsg, "unknown time zone") && !strings.Contains(goMsg, "invalid location name") {
		return true
	}
	// kcmdr cuts a quoted piece of input at 400 bytes and its whole message at 1023
	if len(goMsg) > 380 && len(cMsg) > 380 && goMsg[:380] == cMsg[:380] {
		return true
	}
	return false
}

// goResult with a time limit: robfig has loops that never end (see zoneEdges); a new one must
// fail the test, not hang it
func watchdog(spec string, startList []int64) (string, bool) {
	type result struct {
		line     string
		panicked bool
	}
	done := make(chan result, 1)
	go func() {
		l, p := goResult(spec, startList)
		done <- result{l, p}
	}()
	select {
	case r := <-done:
		return r.line, r.panicked
	case <-time.After(10 * time.Second):
		fmt.Printf("robfig-diff: robfig's Next does not return for %q from %v\n", spec, startList)
		os.Exit(1)
	}
	return "", false
}

func main() {
	flag.Parse()
	g := gen{rand.New(rand.NewSource(*seed)), new(bool)}
	if *allZones {
		filepath.WalkDir("/usr/share/zoneinfo", func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				name := strings.TrimPrefix(path, "/usr/share/zoneinfo/")
				if _, err := time.LoadLocation(name); err == nil {
					goodZones = append(goodZones, name)
				}
			}
			return nil
		})
	}
	edges, skips := zoneEdges()
	specs := make([]string, *count)
	startsOf := make([][]int64, *count)
	for i := range specs {
		specs[i] = g.spec()
		startsOf[i] = g.startTimes(specs[i], edges, skips, *starts)
	}
	if *dump {
		for i, s := range specs {
			r, _ := goResult(s, startsOf[i])
			fmt.Printf("%q %v -> %s\n", s, startsOf[i], r)
		}
		return
	}
	if *driver == "" {
		fmt.Fprintln(os.Stderr, "robfig-diff: -driver is required")
		os.Exit(2)
	}
	cmd := exec.Command(*driver, strconv.Itoa(*nexts))
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "robfig-diff:", err)
		os.Exit(1)
	}
	go func() {
		w := bufio.NewWriter(in)
		for i, s := range specs {
			w.WriteString(hex.EncodeToString([]byte(s)))
			if len(s) == 0 {
				w.WriteString("-") // an empty field would vanish
			}
			for _, t := range startsOf[i] {
				fmt.Fprintf(w, " %d", t)
			}
			w.WriteByte('\n')
		}
		w.Flush()
		in.Close()
	}()
	sc := bufio.NewScanner(outPipe)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	diffs, accepted, rejected, panics, never := 0, 0, 0, 0, 0
	for i, s := range specs {
		cLine := "(no output)"
		if sc.Scan() {
			cLine = sc.Text()
		}
		goLine, panicked := watchdog(s, startsOf[i])
		ok := goLine == cLine
		switch {
		case panicked:
			panics++
			ok = strings.HasPrefix(cLine, "ERR ") // robfig crashes; kcmdr must refuse
		case strings.HasPrefix(goLine, "ERR ") && strings.HasPrefix(cLine, "ERR "):
			ok = sameMessage(goLine[4:], cLine[4:])
			rejected++
		case strings.HasPrefix(goLine, "OK"):
			accepted++
			if strings.Contains(goLine, " 0") {
				never++
			}
		}
		if !ok {
			diffs++
			if diffs <= *show {
				fmt.Printf("DIFF %q starts %v\n  robfig: %s\n  kcmdr:  %s\n", s, startsOf[i], goLine, cLine)
			}
		}
	}
	if sc.Scan() {
		fmt.Println("robfig-diff: the driver printed more lines than expressions")
		diffs++
	}
	if err := cmd.Wait(); err != nil {
		fmt.Println("robfig-diff: the driver failed:", err)
		diffs++
	}
	fmt.Printf("accepted %d (%d with a start that never fires), rejected %d, robfig panics %d\n",
		accepted, never, rejected, panics)
	fmt.Printf("robfig: %d expressions x %d start times, %d differences\n", *count, *starts, diffs)
	if diffs > 0 {
		os.Exit(1)
	}
}
