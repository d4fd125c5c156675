use medlit::generate::sampler::argmax;
use medlit::generate::GemmaGguf;
fn main() -> anyhow::Result<()> {
    let path =
        std::path::Path::new("/root/.local/share/medlit/assets/models/gemma-3-270m-q4_k_m.gguf");
    let g = GemmaGguf::load_with(
        path,
        1024,
        &candle_core::Device::Cpu,
        std::env::var("F32").is_ok(),
    )?;
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(100);
    let text = "Rifampin, a broad-spectrum antibiotic able to penetrate intracellularly, was used for treatment of infections with Brucella melitensis in mice. ".repeat(30);
    let mut ids = vec![2u32];
    ids.extend(g.tokenizer.encode(&text));
    ids.truncate(n);
    let run = |chunk: usize| -> Vec<f32> {
        let mut cache = g.model.new_cache().unwrap();
        let mut last = None;
        for c in ids.chunks(chunk) {
            last = Some(g.model.forward(c, &mut cache).unwrap());
        }
        last.unwrap().to_vec1().unwrap()
    };
    let whole = run(ids.len());
    for chunk in [ids.len() / 2 + 1, 64, 16, 4, 2, 1] {
        let o = run(chunk);
        let d = whole
            .iter()
            .zip(&o)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "n {n} chunk {chunk}: max diff {d:.4} argmax {} vs {}",
            argmax(&whole),
            argmax(&o)
        );
    }
    Ok(())
}
