//! Flags of the PMID lookups: `show`, `similar`.
use clap::Args;

use super::common::*;
use crate::reference::Format;

#[derive(Debug, Args)]
#[command(
    after_help = "Prints each PMID's stored record: title, the abstract by section, authors, \
journal, year, volume, issue and pages, MeSH headings (* marks a major topic), keywords, \
publication types, language, DOI, PMC id and the PubMed link. A PMID the index does not hold \
is named on standard error and the exit status is 1; the others still print.\n\n\
Examples:\n  medlit show 31452104\n  medlit show 31452104 32000001 --format ris > refs.ris\n  \
medlit show 31452104 --json"
)]
pub struct ShowArgs {
    /// PubMed identifiers (digits; a leading "PMID:" is accepted)
    #[arg(required = true, num_args = 1.., value_name = "PMID", value_parser = parse_pmid)]
    pub pmids: Vec<u64>,
    /// How to write the records: text to read, or a format reference managers import
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON (an `articles` list and the `missing` PMIDs) instead of --format
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "On a hybrid index: the article's own passages against the dense index (each \
article scored by its closest passage), fused with BM25 \"more like this\" on the article's \
distinctive words; on a keyword-only index, BM25 alone. The article itself is left out.\n\n\
Examples:\n  medlit similar 34076901\n  medlit similar 34076901 -k 20 --json\n  \
medlit similar 34076901 --export ris similar.ris"
)]
pub struct SimilarArgs {
    /// The PubMed identifier of the article
    #[arg(value_name = "PMID", value_parser = parse_pmid)]
    pub pmid: u64,
    /// Number of articles
    #[arg(long, short, default_value_t = 10, value_parser = at_least_one)]
    pub k: usize,
    #[command(flatten)]
    pub export: ExportRefsArgs,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub index: IndexDirArg,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Model Context Protocol over stdio, for AI assistants: the tools search (with \
the filters and field tags), ask (the verified, cited answer and its safety decision), show \
and similar, each returning the JSON of the command of the same name. Every call goes through \
the same safety policy and citation verification as the CLI.\n\n\
An assistant's configuration names the command, e.g.:\n  \
{\"mcpServers\": {\"medlit\": {\"command\": \"medlit\", \"args\": [\"mcp\"]}}}"
)]
pub struct McpArgs {
    /// Retrieval mode (auto: hybrid when the index has a dense part, else bm25)
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: SearchModeArg,
    #[command(flatten)]
    pub generate: GenerateArgs,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub index: IndexDirArg,
}

/// A PMID as users paste it: "31452104", "PMID:31452104" or "PMID 31452104".
pub fn parse_pmid(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t
        .strip_prefix("PMID")
        .or_else(|| t.strip_prefix("pmid"))
        .map(|r| r.trim_start_matches([':', ' ']))
        .unwrap_or(t);
    match digits.parse::<u64>() {
        Ok(0) => Err("PMID 0 is not a PubMed identifier".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "{s:?} is not a PMID (expected digits, e.g. 31452104)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_pmid;

    #[test]
    fn pmids_parse_as_pasted() {
        assert_eq!(parse_pmid("31452104"), Ok(31452104));
        assert_eq!(parse_pmid("PMID:31452104"), Ok(31452104));
        assert_eq!(parse_pmid(" PMID 7 "), Ok(7));
        assert!(parse_pmid("0").is_err());
        assert!(parse_pmid("12a").is_err());
        assert!(parse_pmid("").is_err());
    }
}
