package pac

import (
	"math"
	"strconv"
	"time"

	"github.com/dop251/goja"
)

// The date and time helpers read the clock once per evaluation (Options.Now,
// in Options.Location: the PC's zone, not the tap's). Their argument
// handling follows the script library that browsers and pacparser share,
// measured against pacparser, because PACs in the field were tested there:
// ranges are inclusive, timeRange(9, 17) holds until 17:59:59, dateRange
// and timeRange do not wrap around. weekdayRange does wrap
// (weekdayRange("FRI", "MON") holds on Friday to Monday), as MDN
// describes and Chromium and Firefox do; pacparser 1.3 does not.

var weekdays = map[string]int{"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}

var monthNums = map[string]int{"JAN": 0, "FEB": 1, "MAR": 2, "APR": 3, "MAY": 4, "JUN": 5,
	"JUL": 6, "AUG": 7, "SEP": 8, "OCT": 9, "NOV": 10, "DEC": 11}

// gmtArgs drops a trailing "GMT" argument and says whether there was one.
func gmtArgs(c goja.FunctionCall) ([]goja.Value, bool) {
	args := c.Arguments
	if n := len(args); n > 0 && args[n-1].String() == "GMT" {
		return args[:n-1], true
	}
	return args, false
}

// clockArgs are the arguments without a trailing "GMT", and the clock in
// the PC's zone, or in UTC with "GMT"; false when there are no arguments.
func (rt *jsrt) clockArgs(c goja.FunctionCall) ([]goja.Value, time.Time, bool) {
	args, gmt := gmtArgs(c)
	now := rt.st.now
	if gmt {
		now = now.UTC()
	}
	return args, now, len(c.Arguments) > 0
}

// weekdayRange(wd1[, wd2][, "GMT"]).
func (rt *jsrt) weekdayRange(c goja.FunctionCall) goja.Value {
	args, now, ok := rt.clockArgs(c)
	if !ok {
		return rt.bool(false)
	}
	day := int(now.Weekday())
	day1, ok1 := weekdays[argString(args, 0)]
	day2, ok2 := day1, ok1
	if len(args) == 2 {
		day2, ok2 = weekdays[argString(args, 1)]
	}
	switch {
	case !ok1 || !ok2:
		return rt.bool(false)
	case day1 <= day2:
		return rt.bool(day1 <= day && day <= day2)
	default:
		return rt.bool(day >= day1 || day <= day2)
	}
}

func argString(args []goja.Value, i int) string {
	if i < len(args) {
		return args[i].String()
	}
	return "undefined"
}

func argNumber(args []goja.Value, i int) float64 {
	if i < len(args) {
		return args[i].ToFloat()
	}
	return math.NaN()
}

// timeRange(hour) | (h1, h2) | (h1, m1, h2, m2) | (h1, m1, s1, h2, m2, s2),
// each optionally followed by "GMT". Other counts throw, as in browsers.
func (rt *jsrt) timeRange(c goja.FunctionCall) goja.Value {
	args, now, ok := rt.clockArgs(c)
	if !ok {
		return rt.bool(false)
	}
	hour := float64(now.Hour())
	minute := float64(now.Hour()*60 + now.Minute())
	second := minute*60 + float64(now.Second())
	n := func(i int) float64 { return argNumber(args, i) }
	switch len(args) {
	case 1:
		return rt.bool(hour == n(0))
	case 2:
		return rt.bool(n(0) <= hour && hour <= n(1))
	case 4:
		// The start keeps the current second and the end is hh:mm:59, so
		// whole minutes compare.
		return rt.bool(n(0)*60+n(1) <= minute && minute <= n(2)*60+n(3))
	case 6:
		return rt.bool((n(0)*60+n(1))*60+n(2) <= second && second <= (n(3)*60+n(4))*60+n(5))
	}
	panic(rt.vm.ToValue("timeRange: bad number of arguments"))
}

// jsDate is a JavaScript Date reduced to what dateRange needs: local fields
// in one zone, each setter normalising overflow as Date's setters do
// (February 31 is March 3), which Go's time.Date does the same way.
type jsDate struct{ t time.Time }

func (d *jsDate) set(y int, m time.Month, day int) {
	t := d.t
	d.t = time.Date(y, m, day, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
}
func (d *jsDate) setFullYear(y int) { d.set(y, d.t.Month(), d.t.Day()) }
func (d *jsDate) setMonth(m int)    { d.set(d.t.Year(), time.Month(m+1), d.t.Day()) }
func (d *jsDate) setDate(day int)   { d.set(d.t.Year(), d.t.Month(), day) }
func (d *jsDate) setClock(h, m, s int) {
	t := d.t
	d.t = time.Date(t.Year(), t.Month(), t.Day(), h, m, s, t.Nanosecond(), t.Location())
}

// jsParseIntArg is parseInt(arg): the leading integer of its string, or
// false when there is none (NaN).
func jsParseIntArg(v goja.Value) (int, bool) {
	s := v.String()
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
		i++
	}
	start := i
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == digits {
		return 0, false
	}
	n, err := strconv.Atoi(s[start:i])
	if err != nil {
		return 0, false
	}
	return n, true
}

func monthOf(v goja.Value) int {
	if m, ok := monthNums[v.String()]; ok {
		return m
	}
	return -1
}

// dateRange(day | month | year), two of one kind for a range, (d1, m1, d2,
// m2), (m1, y1, m2, y2) or (d1, m1, y1, d2, m2, y2), each optionally
// followed by "GMT". A number below 32 is a day, above it a year.
func (rt *jsrt) dateRange(c goja.FunctionCall) goja.Value {
	if len(c.Arguments) == 0 {
		return rt.bool(false)
	}
	args, gmt := gmtArgs(c)
	now := rt.st.now
	if len(args) == 1 {
		t := now
		if gmt {
			t = t.UTC()
		}
		n, isNum := jsParseIntArg(args[0])
		switch {
		case !isNum:
			return rt.bool(int(t.Month())-1 == monthOf(args[0]))
		case n < 32:
			return rt.bool(t.Day() == n)
		default:
			return rt.bool(t.Year() == n)
		}
	}
	loc := now.Location()
	d1 := jsDate{time.Date(now.Year(), time.January, 1, 0, 0, 0, 0, loc)}
	d2 := jsDate{time.Date(now.Year(), time.December, 31, 23, 59, 59, 0, loc)}
	half := len(args) / 2
	adjustMonth := false
	apply := func(d *jsDate, v goja.Value, first bool) {
		n, isNum := jsParseIntArg(v)
		switch {
		case !isNum:
			d.setMonth(monthOf(v))
		case n < 32:
			if first {
				adjustMonth = len(args) <= 2
			}
			d.setDate(n)
		default:
			d.setFullYear(n)
		}
	}
	for i := 0; i < half; i++ {
		apply(&d1, args[i], true)
	}
	for i := half; i < len(args); i++ {
		apply(&d2, args[i], false)
	}
	if adjustMonth {
		d1.setMonth(int(now.Month()) - 1)
		d2.setMonth(int(now.Month()) - 1)
	}
	cur := jsDate{now}
	if gmt {
		// Each field is set from the UTC view of the date as it stands
		// after the previous setter, as the script library does.
		cur.setFullYear(cur.t.UTC().Year())
		cur.setMonth(int(cur.t.UTC().Month()) - 1)
		cur.setDate(cur.t.UTC().Day())
		u := cur.t.UTC()
		cur.setClock(u.Hour(), cur.t.Minute(), cur.t.Second())
		u = cur.t.UTC()
		cur.setClock(cur.t.Hour(), u.Minute(), cur.t.Second())
		u = cur.t.UTC()
		cur.setClock(cur.t.Hour(), cur.t.Minute(), u.Second())
	}
	return rt.bool(!d1.t.After(cur.t) && !cur.t.After(d2.t))
}
