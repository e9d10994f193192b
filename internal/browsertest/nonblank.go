package browsertest

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
)

// MinColours is how many distinct colours a screenshot of a rendered page
// has at least: text alone brings anti-aliased shades, while a page that
// failed to render (blank, or one background) has one or two.
const MinColours = 8

// CheckNonBlank decodes a PNG and says why it is blank, if it is: not a
// PNG, empty, one uniform colour, or fewer than MinColours colours.
func CheckNonBlank(b []byte) error {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not a PNG: %w", err)
	}
	r := img.Bounds()
	if r.Empty() {
		return fmt.Errorf("empty image %v", r)
	}
	if n := colours(img, MinColours); n < MinColours {
		return fmt.Errorf("blank: %d distinct colour(s) in %dx%d pixels, want at least %d", n, r.Dx(), r.Dy(), MinColours)
	}
	return nil
}

// colours counts the distinct colours of img, stopping at enough.
func colours(img image.Image, enough int) int {
	seen := map[[4]uint32]bool{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, ca := img.At(x, y).RGBA()
			seen[[4]uint32{cr, cg, cb, ca}] = true
			if len(seen) >= enough {
				return len(seen)
			}
		}
	}
	return len(seen)
}
