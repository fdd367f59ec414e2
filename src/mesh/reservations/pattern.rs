//! Reservation patterns: paths and globs relative to the project root, and the two questions
//! reservations ask of them: does a pattern cover a path, and could two patterns cover one path.
//!
//! A pattern is `/`-separated segments. In a segment, `*` is any run of characters, `?` one
//! character, `[abc]`, `[a-z]` and `[!a-z]` a class; a whole segment `**` is any number of
//! segments, none included. A pattern reserves every path it matches **and everything beneath
//! them**: `src/store` reserves the directory's files, `src/*` everything under `src`. So a
//! compiled pattern ends in an implicit `**`.
//!
//! Both questions are answered by one product construction over the patterns' tokens, so the
//! guard (path against pattern) and `reserve` (pattern against pattern) can never disagree:
//! `src/**` and `src/store/sqlite.rs` overlap whichever of the two was reserved first.

use crate::error::{MeshError, Result};

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// One character position of a segment glob.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `[...]`: inclusive ranges, negated by a leading `!` or `^`.
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of segments.
    Any,
    Glob(Vec<Token>),
}

/// A checked, compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern as normalised (`./` and trailing `/` dropped): what is stored and shown.
    pub text: String,
    segments: Vec<Segment>,
    /// The leading segments without any wildcard, joined by `/`: every path the pattern
    /// matches starts with them (the guard's index).
    pub literal_prefix: String,
    /// Whether the pattern has no wildcard at all (a plain path).
    pub literal: bool,
}

impl Pattern {
    /// Check and compile `raw`, which names `field` in errors. Absolute paths, `..`, empty
    /// segments, backslashes and empty patterns are refused.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self> {
        let bad = |why: &str| MeshError::invalid(field, format!("`{raw}`: {why}"));
        if raw.trim().is_empty() {
            return Err(bad("an empty pattern reserves nothing; name a path or a glob"));
        }
        if raw.len() > MAX_PATTERN_BYTES {
            return Err(bad(&format!("longer than {MAX_PATTERN_BYTES} bytes")));
        }
        if raw.starts_with('/') || raw.as_bytes().get(1) == Some(&b':') {
            return Err(bad("absolute paths are refused: give a path relative to the project root"));
        }
        if raw.contains('\\') {
            return Err(bad("use `/` between segments (backslashes are refused)"));
        }
        if raw.chars().any(char::is_control) {
            return Err(bad("control characters are refused"));
        }
        let trimmed = raw.strip_suffix('/').unwrap_or(raw);
        let mut texts = Vec::new();
        for part in trimmed.split('/') {
            match part {
                "" => return Err(bad("empty segment (`//`)")),
                "." => continue,
                ".." => return Err(bad("`..` would leave the project root")),
                _ => texts.push(part),
            }
        }
        if texts.is_empty() {
            return Err(bad("names the project root itself; reserve `**` to mean everything"));
        }
        let mut segments = Vec::with_capacity(texts.len() + 1);
        for part in &texts {
            segments.push(if *part == "**" { Segment::Any } else { Segment::Glob(tokens(part).map_err(|e| bad(&e))?) });
        }
        let literal_len = segments.iter().take_while(|s| is_literal(s)).count();
        let literal = literal_len == segments.len();
        let literal_prefix = texts[..literal_len].join("/");
        if segments.last() != Some(&Segment::Any) {
            segments.push(Segment::Any);
        }
        Ok(Self { text: texts.join("/"), segments, literal_prefix, literal })
    }

    /// Whether the pattern covers `path` (a path relative to the root, `/`-separated).
    pub fn covers(&self, path: &str) -> bool {
        self.covers_path(&PathSegments::of(path))
    }

    /// [`Pattern::covers`] for a path split once for many patterns.
    pub fn covers_path(&self, path: &PathSegments) -> bool {
        intersect(&self.segments, &path.0, segments_meet)
    }

    /// Whether some path is covered by both patterns.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        intersect(&self.segments, &other.segments, segments_meet)
    }
}

/// A path split into segments, to test against many patterns.
pub struct PathSegments(Vec<Segment>);

impl PathSegments {
    pub fn of(path: &str) -> Self {
        Self(
            path.split('/')
                .filter(|s| !s.is_empty())
                .map(|s| Segment::Glob(s.chars().map(Token::Lit).collect()))
                .collect(),
        )
    }
}

fn is_literal(segment: &Segment) -> bool {
    matches!(segment, Segment::Glob(t) if t.iter().all(|t| matches!(t, Token::Lit(_))))
}

fn tokens(segment: &str) -> std::result::Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = segment.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                Token::Star
            }
            '?' => Token::One,
            '[' => class(&mut chars)?,
            ']' => return Err("`]` without `[`".into()),
            c => Token::Lit(c),
        });
    }
    Ok(out)
}

fn class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> std::result::Result<Token, String> {
    let negated = matches!(chars.peek(), Some('!' | '^'));
    if negated {
        chars.next();
    }
    let mut ranges = Vec::new();
    loop {
        let c = chars.next().ok_or("`[` without `]`")?;
        if c == ']' && !ranges.is_empty() {
            break;
        }
        if chars.peek() == Some(&'-') {
            chars.next();
            match chars.next() {
                Some(']') => {
                    ranges.extend([(c, c), ('-', '-')]);
                    break;
                }
                Some(hi) if hi >= c => ranges.push((c, hi)),
                Some(hi) => return Err(format!("range `{c}-{hi}` runs backwards")),
                None => return Err("`[` without `]`".into()),
            }
        } else {
            ranges.push((c, c));
        }
    }
    Ok(Token::Class { ranges, negated })
}

/// The product of two token sequences, each token either a loop (`star`) that may match any
/// number of units or a unit that matches one: is there a common word? `meet` says whether two
/// units have a common instance. Used for segments within patterns and characters within
/// segments.
fn intersect<T>(a: &[T], b: &[T], meet: fn(&T, &T) -> bool) -> bool
where
    T: Loop,
{
    let (n, m) = (a.len(), b.len());
    let mut seen = vec![false; (n + 1) * (m + 1)];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, j)) = stack.pop() {
        let slot = i * (m + 1) + j;
        if std::mem::replace(&mut seen[slot], true) {
            continue;
        }
        if i == n && j == m {
            return true;
        }
        let (x, y) = (a.get(i), b.get(j));
        // A loop may match nothing.
        if x.is_some_and(Loop::is_loop) {
            stack.push((i + 1, j));
        }
        if y.is_some_and(Loop::is_loop) {
            stack.push((i, j + 1));
        }
        // Both consume one unit; a loop stays where it is.
        if let (Some(x), Some(y)) = (x, y) {
            let step = |t: &T, k: usize| if t.is_loop() { k } else { k + 1 };
            let next = (step(x, i), step(y, j));
            if next != (i, j) && meet(x, y) {
                stack.push(next);
            }
        }
    }
    false
}

trait Loop {
    fn is_loop(&self) -> bool;
}

impl Loop for Segment {
    fn is_loop(&self) -> bool {
        matches!(self, Segment::Any)
    }
}

impl Loop for Token {
    fn is_loop(&self) -> bool {
        matches!(self, Token::Star)
    }
}

/// Whether one path segment can match both (a `**` matches any segment).
fn segments_meet(a: &Segment, b: &Segment) -> bool {
    match (a, b) {
        (Segment::Glob(x), Segment::Glob(y)) => intersect(x, y, chars_meet),
        _ => true,
    }
}

/// Whether one character can match both tokens (a `*` matches any).
fn chars_meet(a: &Token, b: &Token) -> bool {
    use Token::*;
    match (a, b) {
        (Star, _) | (_, Star) | (One, One) => true,
        (Lit(x), Lit(y)) => x == y,
        (Lit(c), One) | (One, Lit(c)) => *c != '/',
        (Lit(c), Class { ranges, negated }) | (Class { ranges, negated }, Lit(c)) => in_ranges(ranges, *c) != *negated,
        (One, Class { .. }) | (Class { .. }, One) => true,
        (Class { ranges: r, negated: false }, Class { ranges: s, negated: false }) => {
            r.iter().any(|&(a, b)| s.iter().any(|&(c, d)| a <= d && c <= b))
        }
        (Class { ranges: r, negated: false }, Class { ranges: s, negated: true })
        | (Class { ranges: s, negated: true }, Class { ranges: r, negated: false }) => outside(r, s),
        (Class { negated: true, .. }, Class { negated: true, .. }) => true,
    }
}

fn in_ranges(ranges: &[(char, char)], c: char) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

/// Whether some character of `positive` lies outside every range of `excluded`: the first such
/// character of a range is its start or just past the end of an excluded range.
fn outside(positive: &[(char, char)], excluded: &[(char, char)]) -> bool {
    positive.iter().any(|&(lo, hi)| {
        std::iter::once(lo)
            .chain(excluded.iter().filter_map(|&(_, end)| char::from_u32(end as u32 + 1)))
            .any(|c| lo <= c && c <= hi && !in_ranges(excluded, c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse("paths", s).unwrap()
    }

    #[test]
    fn a_pattern_covers_what_it_matches_and_everything_beneath() {
        assert!(p("src/store").covers("src/store/sqlite.rs"));
        assert!(p("src/store/").covers("src/store"));
        assert!(p("src/*.rs").covers("src/lib.rs"));
        assert!(!p("src/*.rs").covers("src/lib.rsx"));
        assert!(!p("src/*.rs").covers("lib.rs"));
        assert!(p("**/*.md").covers("README.md"));
        assert!(p("**/*.md").covers("docs/a/b.md"));
        assert!(p("src/**/mod.rs").covers("src/mod.rs"));
        assert!(p("file?.[a-c]").covers("file1.b"));
        assert!(!p("file?.[!a-c]").covers("file1.b"));
        assert!(p("./a b/c").covers("a b/c"));
        assert!(!p("src/store").covers("src/storehouse.rs"));
        assert!(p("**").covers("anything/at/all"));
    }

    #[test]
    fn globs_overlap_both_ways() {
        let pairs = [
            ("src/**", "src/store/sqlite.rs", true),
            ("src/*.rs", "src/lib.rs", true),
            ("src/*.rs", "src/*.md", false),
            ("src/*.rs", "src/lib.*", true),
            ("*/a", "b/*", true),
            ("a/*/c", "a/b", true), // a/b reserves a/b/c
            ("a/b", "a/c", false),
            ("[a-c]x", "[!a-c]x", false),
            ("[a-c]x", "[!b]x", true),
            ("**/test_*.py", "tests/unit/test_x.py", true),
            ("docs/**/*.md", "src/**", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("x*y*z", "*q*", true),
        ];
        for (a, b, want) in pairs {
            assert_eq!(p(a).overlaps(&p(b)), want, "{a} vs {b}");
            assert_eq!(p(b).overlaps(&p(a)), want, "{b} vs {a}");
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for (raw, why) in [
            ("", "empty pattern"),
            ("  ", "empty pattern"),
            ("/etc/passwd", "absolute"),
            ("C:/x", "absolute"),
            ("../up", "`..`"),
            ("a/../../b", "`..`"),
            ("a//b", "empty segment"),
            ("a\\b", "backslashes"),
            (".", "project root"),
            ("a[b", "without `]`"),
            ("a]", "without `[`"),
            ("[z-a]", "backwards"),
        ] {
            let e = Pattern::parse("paths", raw).unwrap_err().to_string();
            assert!(e.contains(why), "{raw:?}: {e}");
        }
    }

    #[test]
    fn the_literal_prefix_is_what_every_match_starts_with() {
        assert_eq!(p("src/store/*.rs").literal_prefix, "src/store");
        assert_eq!(p("**/*.rs").literal_prefix, "");
        let plain = p("src/lib.rs");
        assert!(plain.literal);
        assert_eq!(plain.literal_prefix, "src/lib.rs");
        assert_eq!(p("./src/").text, "src");
    }
}
