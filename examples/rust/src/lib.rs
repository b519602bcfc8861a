//! A flexilib handler library in Rust: answers `hello from Rust: <method> <target>`.
//!
//! The structs mirror `include/flexilib.h` field for field (`#[repr(C)]`, every
//! integer a `usize`), so no bindings generator or external crate is needed.
//!
//! Each thread keeps its current response in a thread-local raw pointer that
//! `request_deinit` frees. A raw pointer (rather than a value with `Drop`)
//! registers no thread-exit destructor, so the server can unload the library
//! while its threads live on.

use std::cell::Cell;
use std::os::raw::c_char;
use std::panic;
use std::ptr;
use std::slice;

#[repr(C)]
pub struct Header {
    name_ptr: *mut c_char,
    name_len: usize,
    value_ptr: *mut c_char,
    value_len: usize,
}

#[repr(C)]
pub struct Request {
    target: *const c_char,
    target_len: usize,
    method: *mut c_char,
    method_len: usize,
    content: *mut c_char,
    content_len: usize,
    headers: *mut Header,
    headers_len: usize,
}

#[repr(C)]
pub struct Response {
    ptr: *mut c_char,
    len: usize,
    headers: *mut Header,
    headers_len: usize,
    status: usize,
    reason_ptr: *mut c_char,
    reason_len: usize,
}

/// Everything one response points to, kept together so it is freed together.
struct Reply {
    body: Vec<u8>,
    headers: Vec<Header>,
    response: Response,
}

thread_local! {
    static CURRENT: Cell<*mut Reply> = const { Cell::new(ptr::null_mut()) };
}

const CONTENT_TYPE: &str = "Content-Type";
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Views a pointer/length pair from the server as bytes (a null pointer is
/// allowed when the length is 0).
///
/// # Safety
/// `ptr` must point to `len` readable bytes that outlive the returned slice.
unsafe fn bytes<'a>(ptr: *const c_char, len: usize) -> &'a [u8] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        slice::from_raw_parts(ptr.cast::<u8>(), len)
    }
}

/// Header pointing at static text; the server only reads it.
fn static_header(name: &'static str, value: &'static str) -> Header {
    Header {
        name_ptr: name.as_ptr() as *mut c_char,
        name_len: name.len(),
        value_ptr: value.as_ptr() as *mut c_char,
        value_len: value.len(),
    }
}

/// Builds the reply for one request.
///
/// # Safety
/// `request` must be a valid request from the server.
unsafe fn build(request: &Request) -> Box<Reply> {
    let method = String::from_utf8_lossy(bytes(request.method, request.method_len));
    let target = String::from_utf8_lossy(bytes(request.target, request.target_len));
    let mut reply = Box::new(Reply {
        body: format!("hello from Rust: {method} {target}").into_bytes(),
        headers: vec![static_header(CONTENT_TYPE, TEXT_PLAIN)],
        response: Response {
            ptr: ptr::null_mut(),
            len: 0,
            headers: ptr::null_mut(),
            headers_len: 0,
            status: 0,
            reason_ptr: ptr::null_mut(),
            reason_len: 0,
        },
    });
    // The Vecs' buffers never move after this, so the pointers stay valid
    // until the Box is dropped.
    reply.response.ptr = reply.body.as_mut_ptr().cast::<c_char>();
    reply.response.len = reply.body.len();
    reply.response.headers = reply.headers.as_mut_ptr();
    reply.response.headers_len = reply.headers.len();
    reply
}

/// Frees this thread's current reply, if any.
fn release_current() {
    let old = CURRENT.with(|c| c.replace(ptr::null_mut()));
    if !old.is_null() {
        // SAFETY: `old` came from Box::into_raw in handle_request on this thread.
        drop(unsafe { Box::from_raw(old) });
    }
}

/// Entry point called by the server; returns null (the server answers 500)
/// instead of unwinding across the C boundary.
///
/// # Safety
/// `request` must be null or point to a valid request for the call's duration.
#[no_mangle]
pub unsafe extern "C" fn handle_request(request: *mut Request) -> *mut Response {
    release_current(); // in case the server skipped request_deinit
    if request.is_null() {
        return ptr::null_mut();
    }
    let request = &*request;
    match panic::catch_unwind(|| build(request)) {
        Ok(reply) => {
            let raw = Box::into_raw(reply);
            CURRENT.with(|c| c.set(raw));
            ptr::addr_of_mut!((*raw).response)
        }
        Err(_) => ptr::null_mut(),
    }
}

/// Called by the server on the same thread once it has copied the response.
#[no_mangle]
pub extern "C" fn request_deinit() {
    release_current();
}
