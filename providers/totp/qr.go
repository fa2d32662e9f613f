package totp

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/boombuler/barcode/qr"
)

// QuietZone is the light border around the QR code, in modules: ISO/IEC 18004
// §6.3.8 asks for four (a scanner finds the symbol's edge by it).
const QuietZone = 4

// qrPNG draws uri as a QR code (error correction level M, as authenticator
// setup codes usually are) of about size pixels: whole pixels per module, so
// no module is blurred by scaling, and a four-module quiet zone on every side.
func qrPNG(uri string, size int) ([]byte, error) {
	code, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("totp qr code: %w", err)
	}
	n := code.Bounds().Dx()
	scale := max(1, size/(n+2*QuietZone))
	side := (n + 2*QuietZone) * scale
	img := image.NewGray(image.Rect(0, 0, side, side))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			if color.GrayModel.Convert(code.At(x, y)).(color.Gray).Y >= 0x80 {
				continue
			}
			x0, y0 := (x+QuietZone)*scale, (y+QuietZone)*scale
			for dy := 0; dy < scale; dy++ {
				row := img.Pix[(y0+dy)*img.Stride+x0:]
				clear(row[:scale])
			}
		}
	}
	var out bytes.Buffer
	if err := png.Encode(&out, img); err != nil {
		return nil, fmt.Errorf("totp qr png: %w", err)
	}
	return out.Bytes(), nil
}
