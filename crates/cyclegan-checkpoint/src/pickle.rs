//! A small, safe reader and writer for the subset of Python's pickle format that `torch.save`
//! uses.
//!
//! Reading never runs anything: `GLOBAL` names become [`Value::Global`], calls (`REDUCE`,
//! `NEWOBJ`) become [`Value::Call`], persistent ids become [`Value::Persistent`], and the caller
//! ([`crate::pth`]) interprets the few callables a `state_dict` is made of. The one exception is
//! `collections.OrderedDict()`, which is turned into a [`Value::Dict`] at once so that the
//! `SETITEMS` that follow can fill it.
//!
//! The reader works on a byte slice and checks every length against the bytes left, so a
//! truncated or hostile file gives an error, never a panic or a huge allocation.

use crate::error::{shown, shown_quoted};
use std::fmt;

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for `i64` (such as the legacy format's magic number).
    BigInt(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// A dict (or `OrderedDict`), in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A global name (`module.name`), not resolved.
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)`, not performed.
    Call {
        callable: Box<Value>,
        args: Box<Value>,
    },
    /// `obj.__setstate__(state)`, not performed.
    Build {
        object: Box<Value>,
        state: Box<Value>,
    },
    /// A persistent id (`BINPERSID`): in `torch.save` files, a storage reference.
    Persistent(Box<Value>),
}

impl Value {
    /// Whether this is the global `module.name`.
    pub fn is_global(&self, module: &str, name: &str) -> bool {
        matches!(self, Value::Global { module: m, name: n } if m == module && n == name)
    }

    /// The integer, if this is one that fits an `i64`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// A short description for error messages (type and, for names, the name).
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("bool {b}"),
            Value::Int(i) => format!("int {i}"),
            Value::BigInt(i) => format!("int {i}"),
            Value::Float(f) => format!("float {f}"),
            Value::Str(s) => format!("str {}", shown_quoted(s)),
            Value::Bytes(b) => format!("bytes of length {}", b.len()),
            Value::Tuple(v) => format!("tuple of {}", v.len()),
            Value::List(v) => format!("list of {}", v.len()),
            Value::Dict(v) => format!("dict of {}", v.len()),
            Value::Global { module, name } => format!("{}.{}", shown(module), shown(name)),
            Value::Call { callable, .. } => format!("object built by {}", callable.describe()),
            Value::Build { object, .. } => object.describe(),
            Value::Persistent(_) => "persistent reference".into(),
        }
    }
}

/// Why a pickle could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickleError {
    /// The data ended before the pickle's `STOP`.
    Truncated { at: usize },
    /// The data is not a pickle this reader understands.
    Invalid { at: usize, reason: String },
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickleError::Truncated { at } => write!(f, "the pickle ends early (at byte {at})"),
            PickleError::Invalid { at, reason } => {
                write!(f, "invalid pickle at byte {at}: {reason}")
            }
        }
    }
}

impl std::error::Error for PickleError {}

type Result<T> = std::result::Result<T, PickleError>;

/// How deeply values may nest. A `state_dict` nests a few levels, and Python's pickler stops
/// near its recursion limit of 1000; much deeper data (one byte a level) would overflow the
/// stack when the value is dropped or walked.
const MAX_DEPTH: usize = 1000;

/// The most bytes of values that the memo (`PUT`, `GET`) and `DUP` may copy in one pickle.
/// Python shares the object; this reader copies it, so without a bound a few bytes of
/// references that copy each other could ask for terabytes. `torch.save` pickles copy about
/// 25 bytes per byte of pickle (300 KB for a ResNet generator's state_dict).
const MAX_COPIED: usize = 64 << 20;

/// The bytes one value takes besides what it holds.
const VALUE_SIZE: usize = std::mem::size_of::<Value>();

/// A value on the stack or in the memo, with how deeply it nests and about how many bytes it
/// takes (for [`MAX_DEPTH`] and [`MAX_COPIED`]).
#[derive(Clone)]
struct Item {
    value: Value,
    depth: usize,
    size: usize,
}

impl Item {
    /// A value that holds no other value.
    fn leaf(value: Value) -> Item {
        let held = match &value {
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Global { module, name } => module.len() + name.len(),
            _ => 0,
        };
        Item {
            value,
            depth: 0,
            size: VALUE_SIZE + held,
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, Item>,
    /// Bytes of values the memo and `DUP` have copied so far.
    copied: usize,
}

/// Reads one pickle from the start of `data`; returns its value and the number of bytes it
/// took (the next pickle, if any, starts there).
pub fn read(data: &[u8]) -> std::result::Result<(Value, usize), PickleError> {
    let mut r = Reader {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Default::default(),
        copied: 0,
    };
    let value = r.run()?;
    Ok((value, r.pos))
}

impl<'a> Reader<'a> {
    fn invalid(&self, reason: impl Into<String>) -> PickleError {
        PickleError::Invalid {
            at: self.pos,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() - self.pos < n {
            return Err(PickleError::Truncated {
                at: self.data.len(),
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }

    fn len_u64(&mut self) -> Result<usize> {
        let n = u64::from_le_bytes(self.le::<8>()?);
        usize::try_from(n).map_err(|_| self.invalid("length too large"))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated {
                at: self.data.len(),
            })?;
        let line = &rest[..end];
        self.pos += end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        std::str::from_utf8(line).map_err(|_| self.invalid("a text argument is not UTF-8"))
    }

    fn utf8(&self, bytes: &[u8]) -> Result<String> {
        String::from_utf8(bytes.to_vec()).map_err(|_| self.invalid("a string is not UTF-8"))
    }

    /// Pushes a value that holds no other value.
    fn push(&mut self, v: Value) {
        self.stack.push(Item::leaf(v));
    }

    /// Pushes `make(values of parts)`, a value made of `parts`.
    fn push_made_of(
        &mut self,
        parts: Vec<Item>,
        make: impl FnOnce(Vec<Value>) -> Value,
    ) -> Result<()> {
        let (depth, size) = self.measure(&parts)?;
        let value = make(parts.into_iter().map(|p| p.value).collect());
        self.stack.push(Item { value, depth, size });
        Ok(())
    }

    /// The depth and size of a value made of `parts`; an error beyond [`MAX_DEPTH`].
    fn measure(&self, parts: &[Item]) -> Result<(usize, usize)> {
        let depth = 1 + parts.iter().map(|p| p.depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(self.invalid(format!(
                "values nested more than {MAX_DEPTH} deep (a damaged or crafted file)"
            )));
        }
        let size = parts
            .iter()
            .fold(VALUE_SIZE, |total, p| total.saturating_add(p.size));
        Ok((depth, size))
    }

    /// Counts a copy of `size` bytes against [`MAX_COPIED`].
    fn copy(&mut self, size: usize) -> Result<()> {
        self.copied = self.copied.saturating_add(size);
        if self.copied > MAX_COPIED {
            return Err(self.invalid(format!(
                "its memo and DUP references copy more than {} MiB of values (a damaged or crafted file)",
                MAX_COPIED >> 20
            )));
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<Item> {
        if self.marks.last() == Some(&self.stack.len()) {
            return Err(self.invalid("pop across a MARK"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.invalid("stack underflow"))
    }

    fn top(&mut self) -> Result<&mut Item> {
        if self.marks.last() == Some(&self.stack.len()) {
            return Err(self.invalid("no object above the MARK"));
        }
        let at = self.pos;
        self.stack.last_mut().ok_or(PickleError::Invalid {
            at,
            reason: "stack underflow".into(),
        })
    }

    fn pop_mark(&mut self) -> Result<Vec<Item>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.invalid("no MARK on the stack"))?;
        Ok(self.stack.split_off(mark))
    }

    fn dup(&mut self) -> Result<()> {
        let size = self.top()?.size;
        self.copy(size)?;
        let item = self.top()?.clone();
        self.stack.push(item);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<()> {
        let size = self
            .memo
            .get(&key)
            .ok_or_else(|| self.invalid(format!("memo entry {key} is missing")))?
            .size;
        self.copy(size)?;
        let item = self.memo[&key].clone();
        self.stack.push(item);
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Result<()> {
        let size = self
            .stack
            .last()
            .ok_or_else(|| self.invalid("MEMOIZE with an empty stack"))?
            .size;
        self.copy(size)?;
        let item = self.stack.last().expect("checked above").clone();
        self.memo.insert(key, item);
        Ok(())
    }

    /// Adds `items` to the container on top of the stack, with `add`.
    fn add_to_top(
        &mut self,
        items: Vec<Item>,
        add: impl FnOnce(&mut Value, Vec<Value>) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let (depth, size) = self.measure(&items)?;
        let at = self.pos;
        let top = self.top()?;
        add(&mut top.value, items.into_iter().map(|i| i.value).collect())
            .map_err(|reason| PickleError::Invalid { at, reason })?;
        top.depth = top.depth.max(depth);
        top.size = top.size.saturating_add(size - VALUE_SIZE);
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Item>) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.invalid("SETITEMS with an odd number of objects"));
        }
        self.add_to_top(items, |top, items| match top {
            Value::Dict(d) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
                Ok(())
            }
            other => Err(format!("SETITEM on {}", other.describe())),
        })
    }

    fn append(&mut self, items: Vec<Item>) -> Result<()> {
        self.add_to_top(items, |top, items| match top {
            Value::List(l) => {
                l.extend(items);
                Ok(())
            }
            other => Err(format!("APPEND on {}", other.describe())),
        })
    }

    /// Pushes `callable(*args)`.
    fn push_call(&mut self, callable: Item, args: Item) -> Result<()> {
        if callable.value.is_global("collections", "OrderedDict")
            && matches!(&args.value, Value::Tuple(a) if a.is_empty())
        {
            self.push(Value::Dict(Vec::new()));
            return Ok(());
        }
        self.push_made_of(vec![callable, args], |parts| {
            let [callable, args]: [Value; 2] = parts.try_into().expect("two parts");
            Value::Call {
                callable: Box::new(callable),
                args: Box::new(args),
            }
        })
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(self.invalid(format!("unsupported pickle protocol {proto}")));
                    }
                }
                0x95 => {
                    // FRAME: a length hint only.
                    self.take(8)?;
                }
                b'.' => return Ok(self.pop()?.value),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => self.dup()?,
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Value::Int(v as i64))
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Value::Int(v as i64))
                }
                b'I' => {
                    let line = self.line()?;
                    let v =
                        match line {
                            "00" => Value::Bool(false),
                            "01" => Value::Bool(true),
                            s => Value::Int(s.parse().map_err(|_| {
                                self.invalid(format!("bad INT {}", shown_quoted(s)))
                            })?),
                        };
                    self.push(v)
                }
                b'L' => {
                    let line = self.line()?;
                    let s = line.strip_suffix('L').unwrap_or(line);
                    let v: i128 = s
                        .parse()
                        .map_err(|_| self.invalid(format!("bad LONG {}", shown_quoted(s))))?;
                    self.push(int_value(v))
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        u32::from_le_bytes(self.le()?) as usize
                    };
                    if n > 16 {
                        return Err(self.invalid(format!("a {n}-byte integer is too large")));
                    }
                    let bytes = self.take(n)?;
                    let mut v: i128 = 0;
                    for (i, b) in bytes.iter().enumerate() {
                        v |= (*b as i128) << (8 * i);
                    }
                    if n > 0 && n < 16 && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i128 << (8 * n);
                    }
                    self.push(int_value(v))
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Value::Float(v))
                }
                b'F' => {
                    let line = self.line()?;
                    let v = line
                        .parse()
                        .map_err(|_| self.invalid(format!("bad FLOAT {}", shown_quoted(line))))?;
                    self.push(Value::Float(v))
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let s = self.take(n)?;
                    let s = self.utf8(s)?;
                    self.push(Value::Str(s))
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.take(n)?;
                    let s = self.utf8(s)?;
                    self.push(Value::Str(s))
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let s = self.take(n)?;
                    let s = self.utf8(s)?;
                    self.push(Value::Str(s))
                }
                // Python 2 byte strings (BINSTRING, SHORT_BINSTRING): text in old pickles.
                b'T' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Value::Str(s))
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Value::Str(s))
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b))
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b))
                }
                0x8e | 0x96 => {
                    let n = self.len_u64()?;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b))
                }
                b')' => self.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_made_of(items, Value::Tuple)?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_made_of(items, Value::Tuple)?
                }
                b']' => self.push(Value::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_made_of(items, Value::List)?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?
                }
                b'}' => self.push(Value::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Dict(Vec::new()));
                    self.set_items(items)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?
                }
                // Sets: kept as lists (they never hold tensors).
                0x8f => self.push(Value::List(Vec::new())),
                0x90 => {
                    let items = self.pop_mark()?;
                    self.append(items)?
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push_made_of(items, Value::List)?
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.push(Value::Global { module, name })
                }
                0x93 => {
                    let name = self.pop()?.value;
                    let module = self.pop()?.value;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => {
                            self.push(Value::Global { module, name })
                        }
                        _ => return Err(self.invalid("STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.push_call(callable, args)?
                }
                0x81 => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.push_call(class, args)?
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.push_call(class, args)?
                }
                b'b' => {
                    let state = self.pop()?;
                    let object = self.pop()?;
                    // A dict's state is its instance `__dict__` (for a state_dict, `_metadata`):
                    // attributes, not items, so it is dropped.
                    if let Value::Dict(_) = object.value {
                        self.stack.push(object)
                    } else {
                        self.push_made_of(vec![object, state], |parts| {
                            let [object, state]: [Value; 2] = parts.try_into().expect("two parts");
                            Value::Build {
                                object: Box::new(object),
                                state: Box::new(state),
                            }
                        })?
                    }
                }
                b'Q' => {
                    let id = self.pop()?;
                    self.push_made_of(vec![id], |mut parts| {
                        Value::Persistent(Box::new(parts.pop().expect("one part")))
                    })?
                }
                b'P' => {
                    let id = self.line()?.to_string();
                    self.push(Value::Persistent(Box::new(Value::Str(id))))
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.le()?) as u64;
                    self.memo_get(k)?
                }
                b'g' => {
                    let line = self.line()?;
                    let k = line
                        .parse()
                        .map_err(|_| self.invalid(format!("bad GET {}", shown_quoted(line))))?;
                    self.memo_get(k)?
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.le()?) as u64;
                    self.memo_put(k)?
                }
                b'p' => {
                    let line = self.line()?;
                    let k = line
                        .parse()
                        .map_err(|_| self.invalid(format!("bad PUT {}", shown_quoted(line))))?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?
                }
                other => {
                    self.pos -= 1;
                    return Err(self.invalid(format!("unsupported opcode 0x{other:02x}")));
                }
            }
        }
    }
}

fn int_value(v: i128) -> Value {
    i64::try_from(v).map_or(Value::BigInt(v), Value::Int)
}

/// Writes the protocol 2 pickle opcodes `torch.save` uses.
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// Starts a protocol 2 pickle.
    pub fn new() -> Self {
        Self { out: vec![0x80, 2] }
    }

    /// Ends the pickle (`STOP`) and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'.');
        self.out
    }

    pub fn mark(&mut self) {
        self.out.push(b'(');
    }

    pub fn tuple_from_mark(&mut self) {
        self.out.push(b't');
    }

    pub fn empty_tuple(&mut self) {
        self.out.push(b')');
    }

    pub fn set_items(&mut self) {
        self.out.push(b'u');
    }

    pub fn reduce(&mut self) {
        self.out.push(b'R');
    }

    pub fn persistent_id(&mut self) {
        self.out.push(b'Q');
    }

    pub fn bool(&mut self, v: bool) {
        self.out.push(if v { 0x88 } else { 0x89 });
    }

    pub fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
    }

    pub fn str(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    pub fn int(&mut self, v: i64) {
        if (0..256).contains(&v) {
            self.out.extend_from_slice(&[b'K', v as u8]);
        } else if (0..65536).contains(&v) {
            self.out.push(b'M');
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if let Ok(v) = i32::try_from(v) {
            self.out.push(b'J');
            self.out.extend_from_slice(&v.to_le_bytes());
        } else {
            self.out.extend_from_slice(&[0x8a, 8]);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Appends raw opcodes (for tests that need what the writer does not offer).
    #[cfg(test)]
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// A tuple of integers.
    pub fn int_tuple(&mut self, values: &[usize]) {
        if values.is_empty() {
            self.empty_tuple();
            return;
        }
        self.mark();
        for &v in values {
            self.int(v as i64);
        }
        self.tuple_from_mark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn reads_what_the_writer_writes() {
        let mut w = Writer::new();
        w.global("collections", "OrderedDict");
        w.empty_tuple();
        w.reduce();
        w.mark();
        w.str("a");
        w.int_tuple(&[1, 300, 70_000, 5_000_000_000]);
        w.str("b");
        w.bool(true);
        w.set_items();
        let bytes = w.finish();
        let (v, used) = read(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(
            v,
            Value::Dict(vec![
                (
                    s("a"),
                    Value::Tuple(vec![
                        Value::Int(1),
                        Value::Int(300),
                        Value::Int(70_000),
                        Value::Int(5_000_000_000)
                    ])
                ),
                (s("b"), Value::Bool(true)),
            ])
        );
    }

    #[test]
    fn reads_the_legacy_magic_number_and_memo() {
        // LONG1 10 bytes: torch's MAGIC_NUMBER 0x1950a86a20f9469cfc6c, then a memoised list.
        let mut bytes = vec![0x80, 2, 0x8a, 10];
        bytes.extend_from_slice(&0x1950a86a20f9469cfc6c_i128.to_le_bytes()[..10]);
        bytes.push(b'.');
        let (v, used) = read(&bytes).unwrap();
        assert_eq!(v, Value::BigInt(0x1950a86a20f9469cfc6c));
        assert_eq!(used, bytes.len());

        let list = b"\x80\x02]q\x00(X\x01\x00\x00\x00kq\x01h\x01e.";
        let (v, _) = read(list).unwrap();
        assert_eq!(v, Value::List(vec![s("k"), s("k")]));
    }

    #[test]
    fn negative_long1_and_protocol_4_strings() {
        let bytes = b"\x80\x04\x8a\x01\xff\x8c\x02hi\x86.";
        let (v, _) = read(bytes).unwrap();
        assert_eq!(v, Value::Tuple(vec![Value::Int(-1), s("hi")]));
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let mut w = Writer::new();
        w.str("a long enough string");
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            let err = read(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, PickleError::Truncated { .. }),
                "cut at {cut}: {err}"
            );
        }
        assert!(matches!(
            read(b"\x80\x02\xff."),
            Err(PickleError::Invalid { .. })
        ));
        assert!(read(b"\x80\x02.").is_err(), "STOP on an empty stack");
        assert!(read(b"\x80\x02(.").is_err(), "STOP on a MARK");
        assert!(read(b"\x80\x02h\x05.").is_err(), "missing memo entry");
        // A length far beyond the data must not allocate.
        assert!(matches!(
            read(b"\x80\x02X\xff\xff\xff\x7f"),
            Err(PickleError::Truncated { .. })
        ));
    }

    fn invalid_reason(bytes: &[u8]) -> String {
        match read(bytes) {
            Err(PickleError::Invalid { reason, .. }) => reason,
            other => panic!("expected an invalid pickle, got {other:?}"),
        }
    }

    /// Values nested a byte a level would overflow the stack when dropped (an abort).
    #[test]
    fn nesting_beyond_the_limit_is_an_error() {
        for nest in [&b"\x85"[..], b"Q", b")b", b")R"] {
            let mut bytes = b"\x80\x02]".to_vec();
            for _ in 0..1_000_000 {
                bytes.extend_from_slice(nest);
            }
            bytes.push(b'.');
            let reason = invalid_reason(&bytes);
            assert!(reason.contains("nested more than 1000 deep"), "{reason}");
        }
        // Nesting up to the limit reads.
        let mut bytes = b"\x80\x02]".to_vec();
        bytes.extend(std::iter::repeat_n(0x85, MAX_DEPTH));
        bytes.push(b'.');
        assert!(read(&bytes).is_ok());
    }

    /// References that copy each other double with every few bytes (an abort on allocation
    /// failure, after a long time).
    #[test]
    fn copies_beyond_the_limit_are_errors() {
        // DUP then TUPLE2, 64 times.
        let mut bytes = b"\x80\x02]".to_vec();
        for _ in 0..64 {
            bytes.extend_from_slice(b"2\x86");
        }
        bytes.push(b'.');
        assert!(invalid_reason(&bytes).contains("copy more than 64 MiB"));
        // The same through the memo: PUT, GET, GET, TUPLE2.
        let mut bytes = b"\x80\x02]".to_vec();
        for _ in 0..64 {
            bytes.extend_from_slice(b"q\x00h\x00h\x00\x86");
        }
        bytes.push(b'.');
        assert!(invalid_reason(&bytes).contains("copy more than 64 MiB"));
        // A 1 MiB string put in the memo under a million keys.
        let mut bytes = b"\x80\x02B\x00\x00\x10\x00".to_vec();
        bytes.extend(std::iter::repeat_n(0, 1 << 20));
        for key in 0u32..1_000_000 {
            bytes.push(b'r');
            bytes.extend_from_slice(&key.to_le_bytes());
        }
        bytes.push(b'.');
        assert!(invalid_reason(&bytes).contains("copy more than 64 MiB"));
    }
}
