//! Line-by-line reading of the chain's CSV imports (catalog, stores).
//!
//! No field of these files may hold a line break, so every physical line is
//! one record. Reading them line by line rather than as one CSV stream means
//! an unbalanced quote is a rejected line instead of a quoted field that
//! silently swallows every row after it, and a rejected row's line number is
//! always the line of the file, whatever empty lines come before it.

use csv::StringRecord;

/// The non-blank lines of `data` with their 1-based line numbers. `\n` and
/// `\r\n` both end a line; a line of only whitespace is blank.
pub(crate) fn lines(data: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    data.split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
}

/// Parses one line as one CSV record, fields trimmed. An unclosed quoted
/// field or text that is not UTF-8 is an error saying why.
pub(crate) fn record(line: &[u8]) -> Result<StringRecord, String> {
    if let Some(field) = unclosed_quote(line) {
        return Err(format!(
            "unbalanced quote: field {field} opens a quote (\") that is not closed on this line; \
             close it, or write a quote inside a quoted field as \"\""
        ));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .buffer_capacity(line.len().max(64))
        .from_reader(line);
    match rdr.records().next() {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => {
            Err("unreadable row: not UTF-8 text; save the file as UTF-8 CSV".to_owned())
        }
        Some(Err(e)) => Err(format!("unreadable row: {e}")),
        None => Ok(StringRecord::new()),
    }
}

/// The 1-based number of the first field of `line` whose quote is never
/// closed, read the way the csv crate reads: a quote opens a quoted field only
/// as a field's first byte, `""` inside it is a literal quote.
fn unclosed_quote(line: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut field = 1;
    loop {
        if line.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match (line.get(i), line.get(i + 1)) {
                    (None, _) => return Some(field),
                    (Some(b'"'), Some(b'"')) => i += 2,
                    (Some(b'"'), _) => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
        }
        match line.get(i..)?.iter().position(|b| *b == b',') {
            Some(p) => {
                i += p + 1;
                field += 1;
            }
            None => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_unclosed_quote() {
        assert_eq!(unclosed_quote(b"a,b,c"), None);
        assert_eq!(unclosed_quote(b"a,\"b,c\",d"), None);
        assert_eq!(unclosed_quote(b"a,\"b \"\"x\"\"\",d"), None);
        assert_eq!(unclosed_quote(b"a,12\" pizza,d"), None);
        assert_eq!(unclosed_quote(b"\"\""), None);
        assert_eq!(unclosed_quote(b"a,\"b,c"), Some(2));
        assert_eq!(unclosed_quote(b"\""), Some(1));
        assert_eq!(unclosed_quote(b"a,b,\"x\"\""), Some(3));
        assert_eq!(unclosed_quote(b"a,\"b\"c,\"d"), Some(3));
    }

    #[test]
    fn numbers_lines_and_skips_blank_ones() {
        let got: Vec<(u64, &[u8])> = lines(b"h\r\n\r\n  \na,b\n\nc").collect();
        assert_eq!(got, vec![(1, &b"h"[..]), (4, b"a,b"), (6, b"c")]);
    }
}
