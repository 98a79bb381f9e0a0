//! The ceiling for the basic-tier HTTP figures: a hello-world actix-web server (same actix-web,
//! same worker count as evgrid's default) that reads each POST body and answers 200 with nothing.
//! `benches/push-series.sh` publishes to it with the same generator, batch size and connections
//! as to evgrid, so "evgrid requests/s ÷ hello-world requests/s" is what evgrid's work costs.
//!
//! Run: `cargo bench --bench hello_world -- --serve 127.0.0.1:18091 [--workers N]`. Without
//! `--serve` (as `cargo bench` runs every bench) it only says how to use it.

use actix_web::{App, HttpResponse, HttpServer, web};

async fn accept(body: web::Bytes) -> HttpResponse {
    std::hint::black_box(body.len());
    HttpResponse::Ok().finish()
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(addr) = arg("--serve") else {
        println!("hello_world: pass --serve ADDR to run the hello-world ceiling server");
        return Ok(());
    };
    let workers: usize = arg("--workers").and_then(|w| w.parse().ok()).unwrap_or(1);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new()
                .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
                .default_service(web::to(accept))
        })
        .workers(workers)
        .bind(&addr)?
        .run()
        .await
    })
}
