//! The commands read on standard input, one a line. Parsing only: what a
//! command does is in `node.rs`.

use libp2p::Multiaddr;

/// One line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Put {
        key: String,
        value: String,
    },
    Get(String),
    Del(String),
    /// One key or several.
    Sub(Vec<String>),
    /// The keys listed in a file, one a line.
    SubFile(String),
    Unsub(Vec<String>),
    Dial(Multiaddr),
    List,
    Peers,
    Id,
    Addrs,
    Help,
    Quit,
}

/// A line that is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// The command word as typed.
    pub command: String,
    pub message: String,
}

/// Usage and meaning of every command, for `help` and the README.
pub const HELP: [(&str, &str); 14] = [
    (
        "put KEY VALUE",
        "set KEY; the rest of the line is the value",
    ),
    ("get KEY", "the value of KEY, asking peers if need be"),
    ("del KEY", "delete KEY on every node"),
    (
        "sub KEY...",
        "follow each KEY: hear its updates (many keys go out together)",
    ),
    (
        "sub-file PATH",
        "follow the keys listed in PATH, one a line (# starts a comment)",
    ),
    (
        "unsub KEY...",
        "stop following each KEY (its record is kept)",
    ),
    ("list", "the records this node holds"),
    ("peers", "the connected peers"),
    ("id", "this node's PeerId"),
    ("addrs", "the addresses this node listens on"),
    ("dial MULTIADDR", "connect to a peer"),
    ("help", "this list"),
    ("quit", "stop the node (end of input does too)"),
    (
        "(owned validator)",
        "a KEY without a \"<PeerId>/\" prefix means \"<own PeerId>/KEY\"",
    ),
];

/// Parses one line. Blank lines and lines starting with `#` are not
/// commands (`None`), so scripts can carry comments.
pub fn parse(line: &str) -> Option<Result<Command, CommandError>> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (word, rest) = split_word(line);
    Some(parse_command(word, rest).map_err(|message| CommandError {
        command: word.to_owned(),
        message,
    }))
}

fn parse_command(word: &str, rest: &str) -> Result<Command, String> {
    let command = match word {
        "put" => put(rest)?,
        "get" => Command::Get(one_key(word, rest)?),
        "del" => Command::Del(one_key(word, rest)?),
        "sub" => Command::Sub(keys(word, rest)?),
        "sub-file" => {
            Command::SubFile(one_key(word, rest).map_err(|_| "usage: sub-file PATH".to_owned())?)
        }
        "unsub" => Command::Unsub(keys(word, rest)?),
        "dial" => dial(rest)?,
        "list" => no_arguments(word, rest, Command::List)?,
        "peers" => no_arguments(word, rest, Command::Peers)?,
        "id" => no_arguments(word, rest, Command::Id)?,
        "addrs" => no_arguments(word, rest, Command::Addrs)?,
        "help" => Command::Help,
        "quit" | "exit" => no_arguments(word, rest, Command::Quit)?,
        _ => return Err(format!("unknown command {word:?}; type help")),
    };
    Ok(command)
}

/// `put KEY VALUE`: the value is the rest of the line after the key and
/// the blanks that follow it, so it may contain spaces.
fn put(rest: &str) -> Result<Command, String> {
    let (key, value) = split_word(rest);
    if key.is_empty() || value.is_empty() {
        return Err("usage: put KEY VALUE".into());
    }
    Ok(Command::Put {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// Keys are one word: a second word is a mistake, not part of the key.
fn one_key(word: &str, rest: &str) -> Result<String, String> {
    match split_word(rest) {
        (key, "") if !key.is_empty() => Ok(key.to_owned()),
        _ => Err(format!("usage: {word} KEY (a key has no spaces)")),
    }
}

/// One key or more, separated by blanks.
fn keys(word: &str, rest: &str) -> Result<Vec<String>, String> {
    let keys: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
    if keys.is_empty() {
        return Err(format!("usage: {word} KEY... (keys have no spaces)"));
    }
    Ok(keys)
}

/// The keys a `sub-file` names: one a line, blanks around them trimmed;
/// blank lines and lines starting with `#` skipped.
pub fn keys_of_file(text: &str) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains(char::is_whitespace) {
            return Err(format!("line {}: a key has no spaces: {line:?}", n + 1));
        }
        keys.push(line.to_owned());
    }
    Ok(keys)
}

fn dial(rest: &str) -> Result<Command, String> {
    let addr = one_key("dial", rest).map_err(|_| "usage: dial MULTIADDR".to_owned())?;
    addr.parse()
        .map(Command::Dial)
        .map_err(|e| format!("not a multiaddr: {addr:?}: {e}"))
}

fn no_arguments(word: &str, rest: &str, command: Command) -> Result<Command, String> {
    if rest.is_empty() {
        Ok(command)
    } else {
        Err(format!("{word} takes no arguments"))
    }
}

/// The first word of `s` and the rest, with the blanks between removed.
fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    /// The parser behind the lines above: values keep their spaces, keys are
    /// one word, comments and blank lines are no commands.
    #[test]
    fn command_lines_parse() {
        use super::{keys_of_file, parse, Command as C};
        let put = |k: &str, v: &str| C::Put {
            key: k.into(),
            value: v.into(),
        };
        assert_eq!(
            parse("put k  two  words "),
            Some(Ok(put("k", "two  words ")))
        );
        assert_eq!(parse("  get k"), Some(Ok(C::Get("k".into()))));
        assert_eq!(parse("quit"), Some(Ok(C::Quit)));
        assert_eq!(parse("exit"), Some(Ok(C::Quit)));
        assert_eq!(parse("# a comment"), None);
        assert_eq!(parse("   "), None);
        assert_eq!(
            parse("sub a  b"),
            Some(Ok(C::Sub(vec!["a".into(), "b".into()])))
        );
        assert_eq!(
            parse("sub-file /k.txt"),
            Some(Ok(C::SubFile("/k.txt".into())))
        );
        assert_eq!(parse("unsub a"), Some(Ok(C::Unsub(vec!["a".into()]))));
        let error = parse("sub").unwrap().unwrap_err();
        assert_eq!(error.command, "sub");
        assert!(parse("sub-file a b").unwrap().is_err());
        assert_eq!(
            keys_of_file("a\n\n  b  \n# c\n"),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(keys_of_file("a b").is_err());
        assert!(parse("dial /ip4/1.2.3.4/tcp/1").unwrap().is_ok());
    }
}
