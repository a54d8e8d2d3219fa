//! An RTSP server on 127.0.0.1 that serves MP4 (H.264) files, like an IP camera.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

/// A running RTSP server; stops when dropped, closing every client session (as a camera
/// that loses power does).
pub struct RtspServer {
    port: u16,
    server: rtsp::RTSPServer,
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
}

impl RtspServer {
    /// Serves each `(mount, file)` at `rtsp://127.0.0.1:{port}/{mount}`, on a free port.
    /// Each client gets its own session that plays the file once, in real time.
    pub fn start(files: &[(&str, &Path)]) -> Result<Self, String> {
        Self::start_on(0, files)
    }

    /// Like [`RtspServer::start`], on `port` (0: a free one).
    pub fn start_on(port: u16, files: &[(&str, &Path)]) -> Result<Self, String> {
        gst::init().map_err(|e| e.to_string())?;
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let mounts = server.mount_points().ok_or("no mount points")?;
        for (mount, file) in files {
            if !file.exists() {
                return Err(format!("{} does not exist", file.display()));
            }
            let factory = rtsp::RTSPMediaFactory::new();
            let location = file.to_string_lossy().replace('"', "\\\"");
            factory.set_launch(&format!(
                "( filesrc location=\"{location}\" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
            ));
            factory.set_shared(false);
            mounts.add_factory(&format!("/{mount}"), factory);
        }
        let ctx = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&ctx), false);
        let (tx, rx) = mpsc::channel();
        let ml = main_loop.clone();
        let handle = server.clone();
        let thread = std::thread::Builder::new()
            .name("rtsp-server".into())
            .spawn(move || {
                let attached = ctx.with_thread_default(|| {
                    let id = server.attach(Some(&ctx));
                    (id, server.bound_port())
                });
                match attached {
                    Ok((Ok(_id), port)) => {
                        let _ = tx.send(Ok(port as u16));
                        ml.run();
                    }
                    Ok((Err(e), _)) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let port = rx.recv().map_err(|e| e.to_string())??;
        Ok(Self {
            port,
            server: handle,
            main_loop,
            thread: Some(thread),
        })
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a mount.
    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{mount}", self.port)
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        // Tear every client's session down (its media stops), then stop serving.
        self.server
            .client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
