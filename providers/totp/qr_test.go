package totp

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	"github.com/makiuchi-d/gozxing"
	qrdecode "github.com/makiuchi-d/gozxing/qrcode"
)

// The setup QR code decodes to the URI and has a quiet zone of four modules on
// every side (ISO/IEC 18004 §6.3.8; issue 17: it had one).
func TestQRPNGQuietZoneAndContent(t *testing.T) {
	uri := "otpauth://totp/Cloud:alice@example.com?algorithm=SHA1&digits=6&issuer=Cloud&period=30&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	raw, err := qrPNG(uri, 256)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	dark := func(x, y int) bool { r, _, _, _ := img.At(x, y).RGBA(); return r < 0x8000 }
	b := img.Bounds()
	// The finder pattern in the top-left corner starts the first dark row: its
	// run of dark pixels is 7 modules long, which gives the module size.
	top, left := -1, -1
	for y := b.Min.Y; y < b.Max.Y && top < 0; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if dark(x, y) {
				top, left = y, x
				break
			}
		}
	}
	run := 0
	for x := left; x < b.Max.X && dark(x, top); x++ {
		run++
	}
	if run%7 != 0 {
		t.Fatalf("finder pattern row is %d px, not a multiple of 7 modules", run)
	}
	module := run / 7
	right, bottom := -1, -1
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if dark(x, y) {
				right, bottom = max(right, x), max(bottom, y)
			}
		}
	}
	margins := map[string]int{"top": top, "left": left, "right": b.Max.X - 1 - right, "bottom": b.Max.Y - 1 - bottom}
	for side, px := range margins {
		if px != QuietZone*module {
			t.Errorf("%s quiet zone is %d px = %.1f modules of %d px, want %d modules", side, px, float64(px)/float64(module), module, QuietZone)
		}
	}
	if got := decodeQR(t, img); got != uri {
		t.Fatalf("QR code decodes to %q, want %q", got, uri)
	}
}

func decodeQR(t *testing.T, img image.Image) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrdecode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("QR code does not decode: %v", err)
	}
	return res.GetText()
}
