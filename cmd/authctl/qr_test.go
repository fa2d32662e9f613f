package main

import (
	"bytes"
	"image"
	"image/color"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	qrdecode "github.com/makiuchi-d/gozxing/qrcode"
)

// The terminal QR code sets its own colours in every cell (so a light terminal
// shows it the right way round, issue 17), has a four-module quiet zone, and
// decodes to the URI: the test reads the cells back into modules as a
// terminal would paint them and runs a QR decoder on the picture.
func TestTerminalQRReadsOnAnyTheme(t *testing.T) {
	uri := "otpauth://totp/twofactor:alice?algorithm=SHA1&digits=6&issuer=twofactor&period=30&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	var buf bytes.Buffer
	drawQR(&buf, uri)
	// light[y][x] is one module: true where the cell paints bright white.
	var light [][]bool
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		cells := strings.Split(line, "\033[0m")
		if cells[len(cells)-1] == "" {
			cells = cells[:len(cells)-1]
		}
		top, bottom := make([]bool, len(cells)), make([]bool, len(cells))
		for i, c := range cells {
			ch, ok := strings.CutPrefix(c, "\033[97;40m")
			if !ok {
				t.Fatalf("cell %d of line %q does not set its own colours", i, line)
			}
			switch ch {
			case "█":
				top[i], bottom[i] = true, true
			case "▀":
				top[i] = true
			case "▄":
				bottom[i] = true
			case " ":
			default:
				t.Fatalf("unexpected cell %q", ch)
			}
		}
		light = append(light, top, bottom)
	}
	// An odd number of module rows leaves the last cells' lower halves unpainted.
	if last := light[len(light)-1]; !strings.Contains(fmtRow(last), "1") {
		light = light[:len(light)-1]
	}
	n := len(light[0])
	quiet := 0
	for quiet < n && allLight(light, quiet) {
		quiet++
	}
	if quiet < 4 {
		t.Errorf("quiet zone is %d modules, want at least 4", quiet)
	}
	const px = 4
	img := image.NewGray(image.Rect(0, 0, n*px, len(light)*px))
	for y, row := range light {
		for x, l := range row {
			c := color.Gray{}
			if l {
				c.Y = 0xff
			}
			for d := 0; d < px*px; d++ {
				img.SetGray(x*px+d%px, y*px+d/px, c)
			}
		}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrdecode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("the terminal QR code does not decode: %v\n%s", err, buf.String())
	}
	if res.GetText() != uri {
		t.Fatalf("decodes to %q, want %q", res.GetText(), uri)
	}
}

// allLight tells whether column and row i of the module grid are all light.
func allLight(m [][]bool, i int) bool {
	for y := range m {
		if !m[y][i] {
			return false
		}
	}
	for x := range m[i] {
		if !m[i][x] {
			return false
		}
	}
	return true
}

func fmtRow(r []bool) string {
	var b strings.Builder
	for _, l := range r {
		if l {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	return b.String()
}
