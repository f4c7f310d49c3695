//! JPEG pixels by libjpeg-turbo's decoder (vendored by the `mozjpeg` crate), the decoder PIL
//! uses, with its defaults (integer IDCT, fancy chroma upsampling): the RGB bytes are PIL's
//! exactly, so a JPEG reaches a model as transformers' image processors would give it.
//!
//! libjpeg reports fatal errors by unwinding out of the decoder (the `mozjpeg` crate's
//! contract); they are caught here and returned as the message libjpeg formats. A file that
//! ends early is only a warning to libjpeg (it pads the image with grey); here, as in PIL, it
//! is an error.

use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr, jpeg_std_error, JWRN_JPEG_EOF};
use std::os::raw::c_int;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// Decodes `bytes` (a JPEG whose header size the caller has already checked) to RGB rows:
/// (width, height, pixels). The error is libjpeg's message.
pub(crate) fn decode(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
    let run = || -> std::io::Result<(usize, usize, Vec<u8>)> {
        let mut started = mozjpeg::decompress::DecompressBuilder::new()
            .with_err(error_manager())
            .from_mem(bytes)?
            .rgb()?;
        let (w, h) = (started.width(), started.height());
        let pixels = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok((w, h, pixels))
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok((w, h, pixels))) if pixels.len() == w * h * 3 => Ok((w, h, pixels)),
        Ok(Ok((w, h, pixels))) => Err(format!(
            "{} bytes of pixels for {w} x {h} RGB",
            pixels.len()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "libjpeg stopped on an unknown error".into())),
    }
}

/// libjpeg's standard error manager, with fatal errors and the premature-end warning turned
/// into unwinding (carrying libjpeg's message) and every other warning silenced.
fn error_manager() -> jpeg_error_mgr {
    // SAFETY: jpeg_error_mgr is a plain C struct for which all-zero is a valid value, and
    // jpeg_std_error fills in every field.
    let mut err: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { jpeg_std_error(&mut err) };
    err.error_exit = Some(fatal);
    err.emit_message = Some(warning);
    err
}

fn message(cinfo: &mut jpeg_common_struct) -> String {
    // SAFETY: libjpeg calls the error manager with `cinfo.err` pointing at the manager made
    // by `error_manager`; format_message writes a NUL-terminated string of at most 80 bytes.
    unsafe {
        let Some(err) = cinfo.err.as_ref() else {
            return "libjpeg error".into();
        };
        let code = err.msg_code;
        let Some(format) = err.format_message else {
            return format!("libjpeg error {code}");
        };
        // libjpeg writes into the buffer: the binding's `&[u8; 80]` is a `char *` (the
        // `mozjpeg` crate calls it through the same `&mut` signature).
        let format: unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &mut [u8; 80]) =
            std::mem::transmute(format);
        let mut buffer = [0u8; 80];
        format(cinfo, &mut buffer);
        let text = buffer.split(|&c| c == 0).next().unwrap_or_default();
        String::from_utf8_lossy(text).into_owned()
    }
}

unsafe extern "C-unwind" fn fatal(cinfo: &mut jpeg_common_struct) {
    resume_unwind(Box::new(message(cinfo)));
}

unsafe extern "C-unwind" fn warning(cinfo: &mut jpeg_common_struct, level: c_int) {
    // SAFETY: as in `message`, `cinfo.err` is the manager made by `error_manager` or null.
    let eof = unsafe { cinfo.err.as_ref() }.is_some_and(|e| e.msg_code == JWRN_JPEG_EOF as c_int);
    if level < 0 && eof {
        resume_unwind(Box::new(message(cinfo)));
    }
}
