//! A minimal PDF writer for the documents the application hands out (the Art. 15 report,
//! bilans): a title, headings, paragraphs, key/value lines and tables, on A4 pages.
//!
//! Text is set in the standard Helvetica fonts with WinAnsiEncoding, which every PDF
//! reader has: no font file is embedded, and French (accents, œ, « », the narrow
//! no-break space) is in that encoding. A character outside it is written `?`, never
//! dropped silently. Lines are wrapped with Helvetica's own widths (AFM).
//!
//! ```
//! use passerelle_server::web::pdf::Document;
//! let bytes = Document::new("Rapport d'accès")
//!     .heading("Données reçues")
//!     .paragraph("Les données ont été reçues le 2 décembre 2026.")
//!     .key_value("Finalité", "Orientation BRSA")
//!     .table(&["Date", "Destinataire"], vec![vec!["2 décembre 2026".into(), "Mission Locale de Lille".into()]])
//!     .to_pdf();
//! assert!(bytes.starts_with(b"%PDF-"));
//! ```

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

/// One block of a document, laid out top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Heading(String),
    Paragraph(String),
    /// A label and its value on one line (the value wraps beside the label).
    KeyValue(String, String),
    Table {
        headers: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

/// A simple document: a title and blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub title: String,
    pub blocks: Vec<Block>,
}

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const BODY: f32 = 10.0;
const HEADING: f32 = 13.0;
const TITLE: f32 = 17.0;
const KEY_W: f32 = 170.0;
const CELL_PAD: f32 = 3.0;
const ROW_LEADING: f32 = 1.25;

/// Each cell's wrapped lines.
fn cell_lines(cells: &[String], widths: &[f32], font: Font) -> Vec<Vec<String>> {
    widths
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let text = cells.get(i).map_or("", String::as_str);
            wrap(text, font, BODY, w - 2.0 * CELL_PAD)
        })
        .collect()
}

fn row_height(lines: &[Vec<String>]) -> f32 {
    let n = lines.iter().map(Vec::len).max().unwrap_or(1).max(1);
    BODY * ROW_LEADING * n as f32 + 2.0 * CELL_PAD
}

impl Document {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            blocks: Vec::new(),
        }
    }

    pub fn heading(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Heading(text.into()));
        self
    }

    pub fn paragraph(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Paragraph(text.into()));
        self
    }

    pub fn key_value(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.blocks.push(Block::KeyValue(key.into(), value.into()));
        self
    }

    /// A table; a row shorter than the headers is padded with empty cells.
    pub fn table(mut self, headers: &[&str], rows: Vec<Vec<String>>) -> Self {
        self.blocks.push(Block::Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows,
        });
        self
    }

    /// The PDF bytes (uncompressed: the documents are small, and a reader of the bytes
    /// can check them).
    pub fn to_pdf(&self) -> Vec<u8> {
        let mut layout = Layout::new();
        layout.text_block(&self.title, Font::Bold, TITLE, 0.0, PAGE_W - 2.0 * MARGIN);
        layout.space(8.0);
        for block in &self.blocks {
            match block {
                Block::Heading(h) => {
                    layout.space(8.0);
                    // A heading is not left alone at the foot of a page.
                    layout.need(HEADING * 1.3 + BODY * 2.6);
                    layout.text_block(h, Font::Bold, HEADING, 0.0, PAGE_W - 2.0 * MARGIN);
                    layout.space(3.0);
                }
                Block::Paragraph(p) => {
                    layout.text_block(p, Font::Regular, BODY, 0.0, PAGE_W - 2.0 * MARGIN);
                    layout.space(4.0);
                }
                Block::KeyValue(k, v) => layout.key_value(k, v),
                Block::Table { headers, rows } => {
                    layout.table(headers, rows);
                    layout.space(6.0);
                }
            }
        }
        layout.finish(&self.title)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    fn name(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
        }
    }
}

/// Pages being filled: one content stream per page, and the pen's height.
struct Layout {
    pages: Vec<Content>,
    y: f32,
}

impl Layout {
    fn new() -> Self {
        Self {
            pages: vec![Content::new()],
            y: PAGE_H - MARGIN,
        }
    }

    fn page(&mut self) -> &mut Content {
        self.pages.last_mut().expect("a layout has a page")
    }

    fn new_page(&mut self) {
        self.pages.push(Content::new());
        self.y = PAGE_H - MARGIN;
    }

    /// Starts a new page unless `h` points still fit on this one.
    fn need(&mut self, h: f32) {
        if self.y - h < MARGIN {
            self.new_page();
        }
    }

    fn space(&mut self, h: f32) {
        self.y -= h;
    }

    fn show(&mut self, x: f32, y: f32, font: Font, size: f32, text: &str) {
        let bytes = winansi(text);
        let c = self.page();
        c.begin_text();
        c.set_font(font.name(), size);
        c.next_line(x, y);
        c.show(Str(&bytes));
        c.end_text();
    }

    /// Wrapped text at `indent` from the margin, `width` wide, breaking pages as needed.
    fn text_block(&mut self, text: &str, font: Font, size: f32, indent: f32, width: f32) {
        let leading = size * 1.3;
        for line in wrap(text, font, size, width) {
            self.need(leading);
            self.y -= leading;
            let y = self.y + size * 0.25;
            self.show(MARGIN + indent, y, font, size, &line);
        }
    }

    fn key_value(&mut self, key: &str, value: &str) {
        let leading = BODY * 1.3;
        let keys = wrap(key, Font::Bold, BODY, KEY_W - 8.0);
        let values = wrap(value, Font::Regular, BODY, PAGE_W - 2.0 * MARGIN - KEY_W);
        let n = keys.len().max(values.len());
        self.need(leading * n as f32);
        for i in 0..n {
            self.y -= leading;
            let y = self.y + BODY * 0.25;
            if let Some(k) = keys.get(i) {
                self.show(MARGIN, y, Font::Bold, BODY, k);
            }
            if let Some(v) = values.get(i) {
                self.show(MARGIN + KEY_W, y, Font::Regular, BODY, v);
            }
        }
        self.space(2.0);
    }

    fn table(&mut self, headers: &[String], rows: &[Vec<String>]) {
        let cols = headers
            .len()
            .max(rows.iter().map(Vec::len).max().unwrap_or(0));
        if cols == 0 {
            return;
        }
        let widths = column_widths(headers, rows, cols, PAGE_W - 2.0 * MARGIN);
        self.table_row(headers, &widths, Font::Bold);
        for row in rows {
            let lines = cell_lines(row, &widths, Font::Regular);
            if self.y - row_height(&lines) < MARGIN {
                // The headers are repeated at the top of the new page.
                self.new_page();
                self.table_row(headers, &widths, Font::Bold);
            }
            self.draw_row(&lines, &widths, Font::Regular);
        }
    }

    fn table_row(&mut self, cells: &[String], widths: &[f32], font: Font) {
        let lines = cell_lines(cells, widths, font);
        self.need(row_height(&lines));
        self.draw_row(&lines, widths, font);
    }

    fn draw_row(&mut self, lines: &[Vec<String>], widths: &[f32], font: Font) {
        let leading = BODY * ROW_LEADING;
        let h = row_height(lines);
        let top = self.y;
        let mut x = MARGIN;
        for (i, cell) in lines.iter().enumerate() {
            for (j, line) in cell.iter().enumerate() {
                let y = top - CELL_PAD - leading * (j as f32 + 1.0) + BODY * 0.25;
                self.show(x + CELL_PAD, y, font, BODY, line);
            }
            x += widths[i];
        }
        self.y = top - h;
        // A thin rule under each row; a thicker one under the headers.
        let total: f32 = widths.iter().sum();
        let y = self.y;
        let c = self.page();
        c.set_line_width(if font == Font::Bold { 1.0 } else { 0.4 });
        c.move_to(MARGIN, y);
        c.line_to(MARGIN + total, y);
        c.stroke();
    }

    fn finish(self, title: &str) -> Vec<u8> {
        let mut pdf = Pdf::new();
        let catalog = Ref::new(1);
        let tree = Ref::new(2);
        let regular = Ref::new(3);
        let bold = Ref::new(4);
        let info = Ref::new(5);
        let first = 6;
        let page_ids: Vec<Ref> = (0..self.pages.len())
            .map(|i| Ref::new(first + 2 * i as i32))
            .collect();
        pdf.catalog(catalog).pages(tree).lang(TextStr("fr-FR"));
        pdf.pages(tree)
            .kids(page_ids.iter().copied())
            .count(page_ids.len() as i32);
        pdf.type1_font(regular)
            .base_font(Name(b"Helvetica"))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
        pdf.type1_font(bold)
            .base_font(Name(b"Helvetica-Bold"))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
        pdf.document_info(info)
            .title(TextStr(title))
            .producer(TextStr("Passerelle"));
        for (i, content) in self.pages.into_iter().enumerate() {
            let page_id = page_ids[i];
            let content_id = Ref::new(page_id.get() + 1);
            let mut page = pdf.page(page_id);
            page.parent(tree)
                .media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
                .contents(content_id);
            let mut res = page.resources();
            res.fonts()
                .pair(Name(b"F1"), regular)
                .pair(Name(b"F2"), bold);
            res.finish();
            page.finish();
            pdf.stream(content_id, &content.finish());
        }
        pdf.finish()
    }
}

/// Column widths: each column's share of its longest text, none below a sixth of an
/// equal share, filling `total`.
fn column_widths(headers: &[String], rows: &[Vec<String>], cols: usize, total: f32) -> Vec<f32> {
    let natural: Vec<f32> = (0..cols)
        .map(|i| {
            let h = headers
                .get(i)
                .map_or(0.0, |t| text_width(t, Font::Bold, BODY));
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|t| text_width(t, Font::Regular, BODY))
                .fold(h, f32::max)
                + 2.0 * CELL_PAD
        })
        .collect();
    let sum: f32 = natural.iter().sum();
    if sum <= total {
        // Everything fits: the spare width goes to every column alike.
        let extra = (total - sum) / cols as f32;
        return natural.iter().map(|w| w + extra).collect();
    }
    let floor = total / cols as f32 / 6.0;
    let shares: Vec<f32> = natural.iter().map(|w| w.max(floor * 6.0 / 2.0)).collect();
    let s: f32 = shares.iter().sum();
    shares.iter().map(|w| (w / s * total).max(floor)).collect()
}

/// Breaks `text` into lines no wider than `width`; a word longer than a line is cut.
/// Explicit newlines are kept.
fn wrap(text: &str, font: Font, size: f32, width: f32) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split(' ').filter(|w| !w.is_empty()) {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if text_width(&candidate, font, size) <= width {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            // A word alone wider than the line: cut it where it overflows.
            let mut piece = String::new();
            for ch in word.chars() {
                piece.push(ch);
                if text_width(&piece, font, size) > width && piece.chars().count() > 1 {
                    piece.pop();
                    out.push(std::mem::take(&mut piece));
                    piece.push(ch);
                }
            }
            line = piece;
        }
        out.push(line);
    }
    out
}

/// Width of `text` in points.
fn text_width(text: &str, font: Font, size: f32) -> f32 {
    let units: u32 = text.chars().map(|c| char_width(c, font)).sum();
    units as f32 * size / 1000.0
}

/// Helvetica and Helvetica-Bold widths (thousandths of the size) for ASCII 32–126.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667,
    611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500,
    222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];
const HELVETICA_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667,
    611, 778, 722, 278, 556, 722, 611, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556,
    278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
];

fn char_width(c: char, font: Font) -> u32 {
    let table = match font {
        Font::Regular => &HELVETICA,
        Font::Bold => &HELVETICA_BOLD,
    };
    // An accented letter is as wide as its base letter in Helvetica.
    let base = match c {
        'à' | 'â' | 'ä' | 'á' | 'ã' | 'å' => 'a',
        'À' | 'Â' | 'Ä' | 'Á' | 'Ã' | 'Å' => 'A',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'É' | 'È' | 'Ê' | 'Ë' => 'E',
        'î' | 'ï' | 'í' | 'ì' => 'i',
        'Î' | 'Ï' | 'Í' | 'Ì' => 'I',
        'ô' | 'ö' | 'ó' | 'ò' | 'õ' => 'o',
        'Ô' | 'Ö' | 'Ó' | 'Ò' | 'Õ' => 'O',
        'ù' | 'û' | 'ü' | 'ú' => 'u',
        'Ù' | 'Û' | 'Ü' | 'Ú' => 'U',
        'ç' => 'c',
        'Ç' => 'C',
        'ÿ' => 'y',
        '\u{a0}' | '\u{202f}' => ' ',
        '’' | '‘' => '\'',
        c => c,
    };
    match base {
        ' '..='~' => u32::from(table[base as usize - 32]),
        'œ' => 944,
        'Œ' => 1000,
        '«' | '»' => 556,
        '–' => 556,
        '—' | '…' => 1000,
        '€' => 556,
        _ => 556,
    }
}

/// `text` in WinAnsiEncoding (Windows-1252); a character outside it becomes `?`.
fn winansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            // The narrow no-break space French puts before `:` and in « », as a no-break space.
            '\u{202f}' => 0xA0,
            '\u{0}'..='\u{7f}' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u8,
            '€' => 0x80,
            '‚' => 0x82,
            '„' => 0x84,
            '…' => 0x85,
            'Œ' => 0x8C,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            'œ' => 0x9C,
            'Ÿ' => 0x9F,
            _ => b'?',
        })
        .collect()
}

/// The text shown on each page of a PDF this module wrote, one string per shown line,
/// decoded back from WinAnsiEncoding (for tests, and for whoever wants to check a
/// downloaded document without a PDF reader). Not a general PDF reader.
pub fn text_of(pdf: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = pdf;
    // Each shown string is written as `(…) Tj` (ASCII) or `<…> Tj` (hex) by pdf-writer.
    while let Some(pos) = find(rest, b" Tj") {
        let before = &rest[..pos];
        if before.ends_with(b">") {
            if let Some(start) = before.iter().rposition(|&b| b == b'<') {
                let hex = &before[start + 1..before.len() - 1];
                let bytes: Vec<u8> = hex
                    .chunks(2)
                    .filter_map(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
                    .collect();
                out.push(from_winansi(&bytes));
            }
        } else if before.ends_with(b")")
            && let Some(s) = literal_before(before)
        {
            out.push(from_winansi(&s));
        }
        rest = &rest[pos + 3..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The literal string ending at the end of `before` (its closing `)` included), unescaped.
fn literal_before(before: &[u8]) -> Option<Vec<u8>> {
    // Scan back to the `(` that opens it: the last unescaped `(` at depth zero.
    let mut depth = 0i32;
    let mut i = before.len();
    while i > 0 {
        i -= 1;
        let escaped = i > 0 && before[i - 1] == b'\\' && !(i > 1 && before[i - 2] == b'\\');
        match before[i] {
            b')' if !escaped => depth += 1,
            b'(' if !escaped => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    let body = &before[i + 1..before.len() - 1];
    let mut out = Vec::new();
    let mut it = body.iter().copied().peekable();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next()? {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            d @ b'0'..=b'7' => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    match it.peek() {
                        Some(&n @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(n - b'0');
                            it.next();
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    Some(out)
}

fn from_winansi(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            0x80 => '€',
            0x82 => '‚',
            0x84 => '„',
            0x85 => '…',
            0x8C => 'Œ',
            0x91 => '‘',
            0x92 => '’',
            0x93 => '“',
            0x94 => '”',
            0x95 => '•',
            0x96 => '–',
            0x97 => '—',
            0x9C => 'œ',
            0x9F => 'Ÿ',
            b => char::from(b),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Document {
        Document::new("Rapport d’accès (article 15 du RGPD)")
            .heading("Qui a reçu quoi")
            .paragraph(
                "Vous avez le droit de demander la rectification, l’effacement ou la limitation \
                 du traitement de vos données, et de vous y opposer. Vous pouvez adresser une \
                 réclamation à la CNIL : www.cnil.fr. Les données sont conservées trois ans.",
            )
            .key_value("Demande reçue le", "2 décembre 2026")
            .key_value("Réponse due au plus tard le", "2 janvier 2027")
            .table(
                &["Date", "Flux", "Destinataire", "Résultat"],
                vec![
                    vec![
                        "2 décembre 2026 à 14 h 05".into(),
                        "Orientation BRSA".into(),
                        "Mission Locale de Lille".into(),
                        "appliqué".into(),
                    ],
                    vec!["3 décembre 2026 à 9 h 00".into(), "Signalement".into()],
                ],
            )
    }

    #[test]
    fn writes_a_pdf_whose_text_reads_back_in_french() {
        let bytes = sample().to_pdf();
        assert!(bytes.starts_with(b"%PDF-1."), "a PDF header");
        assert!(bytes.ends_with(b"%%EOF") || bytes.ends_with(b"%%EOF\n"));
        let text = text_of(&bytes).join("\n");
        for want in [
            "Rapport d’accès (article 15 du RGPD)",
            "Qui a reçu quoi",
            "Demande reçue le",
            "2 janvier 2027",
            "Mission Locale de Lille",
            "appliqué",
            "Signalement",
            "réclamation à la CNIL",
        ] {
            assert!(text.contains(want), "{want:?} missing from {text}");
        }
        // The fonts are the standard ones in WinAnsiEncoding, and the language is French.
        let raw = String::from_utf8_lossy(&bytes);
        assert!(raw.contains("/BaseFont /Helvetica"));
        assert!(raw.contains("/WinAnsiEncoding"));
        assert!(raw.contains("/Lang (fr-FR)"));
    }

    #[test]
    fn accents_are_winansi_bytes_and_others_a_question_mark() {
        assert_eq!(winansi("é"), vec![0xE9]);
        assert_eq!(winansi("œuvre — « oui »"), {
            let mut v = vec![0x9C];
            v.extend(b"uvre ");
            v.extend([0x97, b' ', 0xAB, b' ', b'o', b'u', b'i', b' ', 0xBB]);
            v
        });
        assert_eq!(winansi("\u{202f}"), vec![0xA0]);
        assert_eq!(winansi("漢"), b"?".to_vec());
        assert_eq!(from_winansi(&winansi("déjà œ € ’")), "déjà œ € ’");
    }

    #[test]
    fn long_text_wraps_within_the_width_and_breaks_pages() {
        let width = PAGE_W - 2.0 * MARGIN;
        let long = "données personnelles ".repeat(400);
        for line in wrap(&long, Font::Regular, BODY, width) {
            assert!(text_width(&line, Font::Regular, BODY) <= width, "{line}");
        }
        let word = "x".repeat(500);
        let lines = wrap(&word, Font::Regular, BODY, 100.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), word);

        let bytes = Document::new("Long").paragraph(long.clone()).to_pdf();
        let raw = String::from_utf8_lossy(&bytes);
        assert!(
            raw.matches("/MediaBox").count() > 1,
            "several pages expected"
        );
        // Every word came through, none lost at a page break.
        let text = text_of(&bytes).join(" ");
        assert_eq!(text.matches("personnelles").count(), 400);
    }

    #[test]
    fn a_table_keeps_every_cell_and_rows_of_unequal_length() {
        let rows: Vec<Vec<String>> = (0..120)
            .map(|i| vec![format!("ligne {i}"), format!("valeur numéro {i}")])
            .collect();
        let bytes = Document::new("Tableau")
            .table(&["Ligne", "Valeur", "Note"], rows)
            .to_pdf();
        let text = text_of(&bytes);
        assert!(text.iter().any(|l| l == "Note"));
        assert!(text.iter().any(|l| l == "valeur numéro 119"));
        assert_eq!(text.iter().filter(|l| l.starts_with("ligne ")).count(), 120);
    }
}
