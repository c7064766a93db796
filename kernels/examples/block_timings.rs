//! Milliseconds per forward and backward of each block of the tutorial CNN at batch 100:
//! `cargo run -p facetrain-kernels --example block_timings`.
use std::time::Instant;

use facetrain_kernels::{BlockShape, backward, forward};

fn millis<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    std::hint::black_box(f());
    let start = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f());
    }
    start.elapsed().as_secs_f64() * 1000.0 / reps as f64
}

fn main() {
    let (mut side, mut in_channels, batch) = (96, 3, 100);
    let mut total = 0.0;
    for out_channels in [16, 32, 64, 128] {
        let shape = BlockShape { batch, in_channels, out_channels, height: side, width: side, kernel: 3 };
        let x: Vec<f32> = (0..shape.input_len()).map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.3).collect();
        let w: Vec<f32> = (0..shape.weight_len()).map(|i| ((i * 104729) % 89) as f32 / 890.0 - 0.05).collect();
        let b = vec![0.01; out_channels];
        let pooled = forward(shape, &x, &w, &b);
        let upstream: Vec<f32> = (0..shape.output_len()).map(|i| ((i * 31) % 17) as f32 / 17.0 - 0.5).collect();
        let f = millis(5, || forward(shape, &x, &w, &b));
        let need_input = in_channels != 3;
        let bw = millis(5, || backward(shape, &x, &w, &pooled.winners, &upstream, need_input));
        let flops = 2.0 * (batch * side * side * out_channels * in_channels * 9) as f64;
        let passes = if need_input { 3.0 } else { 2.0 };
        println!(
            "block {in_channels:>3}->{out_channels:<3} {side:>2}px  forward {f:7.1} ms ({:5.1} GFLOP/s)  backward {bw:7.1} ms ({:5.1} GFLOP/s)",
            flops / f / 1e6,
            flops * (passes - 1.0) / bw / 1e6
        );
        total += f + bw;
        side /= 2;
        in_channels = out_channels;
    }
    println!("all blocks, forward + backward: {total:.1} ms");
}
