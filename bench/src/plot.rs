//! Line charts as PNG for the benchmarks, without a plotting or image dependency: a raster
//! canvas, a 5×7 bitmap font, log-log axes (scaling curves are power laws), and a PNG encoder
//! over the zlib stream flate2 already provides.
use std::io::Write;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub series: Vec<Series>,
}

const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [148, 103, 189],
    [255, 127, 14],
    [140, 86, 75],
    [23, 190, 207],
    [127, 127, 127],
];

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }

    /// A line `thick` pixels wide; `dash` > 0 draws `dash` pixels on, `dash` off.
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], dash: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err, mut n) = (x0, y0, dx + dy, 0i64);
        loop {
            if dash == 0 || (n / dash) % 2 == 0 {
                self.rect(x, y, 2, 2, c);
            }
            n += 1;
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text at scale `s` (each font pixel an s×s square), top-left at (x, y).
    fn text(&mut self, x: i64, y: i64, s: i64, text: &str, c: [u8; 3]) {
        for (i, ch) in text.chars().enumerate() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        self.rect(x + (i as i64 * 6 + col) * s, y + r as i64 * s, s, s, c);
                    }
                }
            }
        }
    }

    fn png(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity((self.w * 3 + 1) * self.h);
        for row in self.px.chunks(self.w * 3) {
            raw.push(0); // filter: none
            raw.extend_from_slice(row);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing to a Vec cannot fail.
        let _ = z.write_all(&raw);
        let idat = z.finish().unwrap_or_default();
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&(self.w as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.h as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
        for (kind, data) in [
            (b"IHDR", &ihdr[..]),
            (b"IDAT", &idat[..]),
            (b"IEND", &[][..]),
        ] {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&crc.sum().to_be_bytes());
        }
        out
    }
}

fn text_width(text: &str, s: i64) -> i64 {
    text.chars().count() as i64 * 6 * s
}

/// 1, 10, 100, 1k, 10k, 1M …
fn decade_label(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{}M", v / 1e6),
        v if v >= 1e3 => format!("{}k", v / 1e3),
        v => format!("{v}"),
    }
}

impl Chart {
    /// The chart as a PNG file's bytes, `w`×`h` pixels, both axes logarithmic.
    pub fn png(&self, w: usize, h: usize) -> Vec<u8> {
        let mut c = Canvas::new(w, h);
        let (left, right, top, bottom) = (110i64, 30i64, 60i64, 80i64);
        let (pw, ph) = (w as i64 - left - right, h as i64 - top - bottom);
        let black = [0, 0, 0];
        let grey = [225, 225, 225];
        c.text(left, 18, 3, &self.title, black);

        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|p| p.0 > 0.0 && p.1 > 0.0 && p.0.is_finite() && p.1.is_finite())
            .collect();
        let bounds = |f: fn(&(f64, f64)) -> f64| {
            let lo = pts.iter().map(f).fold(f64::INFINITY, f64::min);
            let hi = pts.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
            if lo.is_finite() {
                let (a, b) = (lo.log10().floor(), hi.log10().ceil());
                (a, if b > a { b } else { a + 1.0 })
            } else {
                (0.0, 1.0)
            }
        };
        let ((x0, x1), (y0, y1)) = (bounds(|p| p.0), bounds(|p| p.1));
        let to_px = |x: f64, y: f64| {
            (
                left + ((x.log10() - x0) / (x1 - x0) * pw as f64).round() as i64,
                top + ph - ((y.log10() - y0) / (y1 - y0) * ph as f64).round() as i64,
            )
        };
        // Grid and decade labels.
        let mut d = y0;
        while d <= y1 + 1e-9 {
            let (_, y) = to_px(10f64.powf(x0), 10f64.powf(d));
            c.line((left, y), (left + pw, y), grey, 0);
            let label = decade_label(10f64.powf(d));
            c.text(left - 12 - text_width(&label, 2), y - 7, 2, &label, black);
            d += 1.0;
        }
        let mut d = x0;
        while d <= x1 + 1e-9 {
            let (x, _) = to_px(10f64.powf(d), 10f64.powf(y0));
            c.line((x, top), (x, top + ph), grey, 0);
            let label = decade_label(10f64.powf(d));
            c.text(
                x - text_width(&label, 2) / 2,
                top + ph + 12,
                2,
                &label,
                black,
            );
            d += 1.0;
        }
        c.line((left, top), (left, top + ph), black, 0);
        c.line((left, top + ph), (left + pw, top + ph), black, 0);
        c.text(
            left + pw / 2 - text_width(&self.x_label, 2) / 2,
            h as i64 - 34,
            2,
            &self.x_label,
            black,
        );

        for (i, s) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let dash = if s.name.ends_with("p95") || s.name.contains("est") {
                8
            } else {
                0
            };
            let px: Vec<(i64, i64)> = s
                .points
                .iter()
                .filter(|p| p.0 > 0.0 && p.1 > 0.0)
                .map(|p| to_px(p.0, p.1))
                .collect();
            for pair in px.windows(2) {
                c.line(pair[0], pair[1], colour, dash);
            }
            for p in &px {
                c.rect(p.0 - 4, p.1 - 4, 9, 9, colour);
            }
            // Legend, top left inside the plot.
            let ly = top + 10 + i as i64 * 22;
            c.rect(left + 14, ly + 3, 24, 8, colour);
            c.text(left + 46, ly, 2, &s.name, black);
        }
        c.png()
    }
}

/// Rows of a 5×7 glyph, most significant of the 5 bits leftmost. Lower case is drawn as
/// upper case; an unknown character as a box.
fn glyph(ch: char) -> [u8; 7] {
    match ch.to_ascii_uppercase() {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [28, 18, 17, 17, 17, 18, 28],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 17, 10, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        '+' => [0, 4, 4, 31, 4, 4, 0],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '/' => [1, 1, 2, 4, 8, 16, 16],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        '*' => [0, 4, 21, 14, 21, 4, 0],
        '_' => [0, 0, 0, 0, 0, 0, 31],
        _ => [31, 17, 17, 17, 17, 17, 31],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid PNG: signature, IHDR of the asked size, and chunk CRCs that check.
    #[test]
    fn png_is_well_formed() {
        let chart = Chart {
            title: "t".into(),
            x_label: "x".into(),
            series: vec![Series {
                name: "a p95".into(),
                points: vec![(5e4, 3.0), (2e5, 9.0), (1e6, 40.0)],
            }],
        };
        let png = chart.png(320, 200);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 320);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 200);
        let mut at = 8;
        let mut kinds = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let body = &png[at + 4..at + 8 + len];
            let mut crc = flate2::Crc::new();
            crc.update(body);
            let want = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc.sum(), want);
            kinds.push(String::from_utf8_lossy(&body[..4]).into_owned());
            at += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        // Decompressed, every row is there and the series' colour was drawn.
        let idat_start = 8 + 25 + 8;
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::ZlibDecoder::new(&png[idat_start..idat_start + idat_len]),
            &mut raw,
        )
        .unwrap();
        assert_eq!(raw.len(), 200 * (320 * 3 + 1));
        assert!(raw.windows(3).any(|w| w == PALETTE[0]));
    }
}
