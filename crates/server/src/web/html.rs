//! What every page shares: the layout (skip link, header, navigation by role, main),
//! the stylesheet, French dates in the configured zone, and the French labels of
//! flows, fields, statuses and roles. Every value shown goes through `esc`.

use chrono::{DateTime, Datelike, Timelike, Utc};
use passerelle_hub::{Role, TransferStatus};

use crate::page::escape_html as esc;
use crate::tz::Timezone;

/// The stylesheet, served at `/style.css` (the CSP allows no inline style).
pub const STYLE: &str = "\
*{box-sizing:border-box}\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1b1b1b;background:#fff;line-height:1.5}\
a{color:#0b4f8a}a:focus,button:focus,input:focus,select:focus{outline:3px solid #c35a00;outline-offset:2px}\
.evitement{position:absolute;left:-10000px}.evitement:focus{left:1em;top:1em;background:#fff;padding:.5em;z-index:2}\
header{background:#123456;color:#fff;padding:.75em 1em;display:flex;flex-wrap:wrap;gap:1em;align-items:center;justify-content:space-between}\
header a{color:#fff}header nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:1em}\
header form{display:inline;margin:0}header button{background:#fff;color:#123456;border:0;padding:.3em .8em;border-radius:3px;cursor:pointer}\
.marque{margin:0}main{padding:1em;max-width:70em;margin:0 auto}\
label{display:block;font-weight:600;margin-top:.8em}\
input,select{font:inherit;padding:.4em;border:1px solid #555;border-radius:3px;max-width:100%}\
button.principal{font:inherit;margin-top:1em;background:#0b4f8a;color:#fff;border:0;padding:.5em 1.2em;border-radius:3px;cursor:pointer}\
fieldset{border:1px solid #999;margin:1em 0;padding:.5em 1em 1em}legend{font-weight:700}\
.aide{color:#444;font-size:.92em;margin:.2em 0}\
.erreur{border-left:5px solid #b00020;background:#fdecee;padding:.6em 1em}\
.info{border-left:5px solid #0b4f8a;background:#eef4fb;padding:.6em 1em}\
table{border-collapse:collapse;width:100%;margin:1em 0}th,td{border:1px solid #999;padding:.35em .6em;text-align:left;vertical-align:top}\
th{background:#eef0f3}caption{text-align:left;font-weight:700;padding:.3em 0}\
.tableau{overflow-x:auto}\
.refuse,.echec{color:#8a0015;font-weight:600}.attente{color:#6b4a00}.applique{color:#0a5d1a}\
.erreur-champ{color:#b00020;font-weight:600;margin:.2em 0}\
textarea{font:inherit;padding:.4em;border:1px solid #555;border-radius:3px;width:100%;max-width:40em}\
.fiche{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}.fiche dt{font-weight:600}.fiche dd{margin:0}\
.case{display:flex;gap:.5em;align-items:baseline}.case label{display:inline;margin:0}\
.ligne{display:flex;flex-wrap:wrap;gap:0 1em;align-items:flex-end}\
.cote{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}.cote figure{margin:0;flex:1 1 28em}.cote .tableau{flex:1 1 20em}.graphique{width:100%;height:auto}.detail{margin:0;padding-left:1.2em}\
@media print{header,nav,form{display:none}}\
@media print{.ecran{display:none}a{color:inherit;text-decoration:none}}\
";

/// One navigation link.
struct Link {
    href: &'static str,
    label: &'static str,
}

fn nav_for(role: Role) -> Vec<Link> {
    let l = |href, label| Link { href, label };
    match role {
        Role::Conseiller => vec![
            l("/", "Accueil"),
            l("/recherche", "Rechercher une personne"),
            l("/envois", "Mes envois"),
            l("/revues", "Revues d'identité"),
            l("/bilans", "Bilans"),
        ],
        Role::Operateur => vec![
            l("/", "Accueil"),
            l("/recherche", "Rechercher une personne"),
            l("/envois", "Envois de l'organisation"),
            l("/revues", "Revues d'identité"),
            l("/exploitation", "Exploitation"),
            l("/bilans", "Bilans"),
        ],
        Role::Dpo => vec![
            l("/", "Accueil"),
            l("/dpo", "Console du DPO"),
            l("/dpo/journal", "Journal"),
            l("/dpo/registre", "Registre"),
            l("/dpo/exports", "Exports"),
            l("/dpo/purge", "Purge"),
            l("/recherche", "Rechercher une personne"),
            l("/envois", "Envois"),
            l("/bilans", "Bilans"),
        ],
        Role::Admin => vec![
            l("/", "Accueil"),
            l("/exploitation", "Exploitation"),
            l("/admin/comptes", "Comptes"),
            l("/bilans", "Bilans"),
        ],
    }
}

/// Who is signed in, as the layout shows it.
#[derive(Debug, Clone)]
pub struct Who<'a> {
    pub login: &'a str,
    pub role: Role,
    pub org_name: Option<String>,
    pub csrf: &'a str,
}

/// A whole page. `title` is the page's own title (the site name is appended).
pub fn layout(title: &str, who: Option<&Who<'_>>, current: &str, body: &str) -> String {
    let mut header = String::from(
        "<header><p class=\"marque\"><a href=\"/\"><strong>Passerelle</strong></a></p>",
    );
    if let Some(w) = who {
        header.push_str("<nav aria-label=\"Navigation principale\"><ul>");
        for link in nav_for(w.role) {
            let aria = if link.href == current {
                " aria-current=\"page\""
            } else {
                ""
            };
            header.push_str(&format!(
                "<li><a href=\"{}\"{aria}>{}</a></li>",
                link.href, link.label
            ));
        }
        header.push_str("</ul></nav>");
        header.push_str(&format!(
            "<div class=\"marque\">{} · {}{} \
             <form method=\"post\" action=\"/deconnexion\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Se déconnecter</button></form></div>",
            esc(w.login),
            role_label(w.role),
            w.org_name
                .as_ref()
                .map(|n| format!(" · {}", esc(n)))
                .unwrap_or_default(),
            esc(w.csrf),
        ));
    }
    header.push_str("</header>");
    format!(
        "<!doctype html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} – Passerelle</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body><a class=\"evitement\" href=\"#contenu\">Aller au contenu</a>{header}\
         <main id=\"contenu\" tabindex=\"-1\"><h1>{}</h1>\n{body}</main></body></html>\n",
        esc(title),
        esc(title),
    )
}

const MOIS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// `2 décembre 2026 à 14 h 05`, in `tz`.
pub fn date_fr(t: DateTime<Utc>, tz: Timezone) -> String {
    let l = tz.to_local(t);
    format!(
        "{} {} {} à {} h {:02}",
        l.day(),
        MOIS[l.month0() as usize],
        l.year(),
        l.hour(),
        l.minute()
    )
}

/// `<time>` with the machine-readable instant and the French text.
pub fn time_fr(t: DateTime<Utc>, tz: Timezone) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        date_fr(t, tz)
    )
}

pub fn role_label(r: Role) -> &'static str {
    match r {
        Role::Conseiller => "conseiller",
        Role::Operateur => "opérateur",
        Role::Dpo => "délégué à la protection des données",
        Role::Admin => "administrateur",
    }
}

/// The flows' labels (spec/domain.md); the id itself for an unknown flow.
pub fn flow_label(id: &str) -> String {
    match id {
        "brsa-orientation" => "Orientation BRSA",
        "brsa-suivi" => "Suivi BRSA",
        "faj-demande" => "Demande FAJ",
        "faj-decision" => "Décision FAJ",
        "ase-majorite" => "Majorité ASE",
        "of-signalement" => "Signalement obligation de formation",
        "of-suivi" => "Suite d'un signalement obligation de formation",
        "box-depot" => "Dépôt sur la box",
        "bilan" => "Bilan",
        other => return esc(other),
    }
    .to_owned()
}

/// Flows known to the pages, for the filters.
pub const FLOWS: [&str; 7] = [
    "brsa-orientation",
    "brsa-suivi",
    "faj-demande",
    "faj-decision",
    "ase-majorite",
    "of-signalement",
    "of-suivi",
];

/// A canonical field path's label (canonical.md); the path for an unknown one.
pub fn field_label(path: &str) -> String {
    let p = path.trim_end_matches("[]");
    let label = match p {
        "schema" => return String::new(),
        "hub_id" => "identifiant Passerelle",
        "sources" => "systèmes d'origine",
        "identifiants.nir" => "NIR",
        "identifiants.imilo_dossier" => "numéro de dossier I-MILO",
        "identifiants.caf" => "numéro allocataire",
        "identifiants.numero_demande_rsa" => "numéro de demande RSA",
        "identifiants.france_travail_ide" => "identifiant France Travail",
        "identifiants.france_travail_id" => "identifiant national France Travail",
        "identifiants.ine" => "INE",
        "identifiants.solis" => "identifiant SOLIS",
        "etat_civil" => "état civil",
        "etat_civil.civilite" => "civilité",
        "etat_civil.nom_naissance" => "nom de naissance",
        "etat_civil.nom_usage" => "nom d'usage",
        "etat_civil.prenoms" => "prénoms",
        "etat_civil.date_naissance" => "date de naissance",
        "etat_civil.commune_naissance_insee" => "commune de naissance",
        "contact" => "coordonnées",
        "contact.adresse" => "adresse",
        "contact.telephones" => "téléphones",
        "contact.email" => "adresse électronique",
        "contact.sans_domicile_fixe" => "sans domicile fixe",
        "representants_legaux" => "représentants légaux",
        "rsa" => "RSA",
        "rsa.role" => "rôle dans le foyer RSA",
        "rsa.etat_droit" => "état du droit RSA",
        "rsa.soumis_droits_devoirs" => "soumis aux droits et devoirs",
        "rsa.entrant_droits_devoirs" => "entrant dans les droits et devoirs",
        "rsa.date_ouverture" => "date d'ouverture du droit RSA",
        "orientation" => "orientation",
        "orientation.type" => "type d'orientation",
        "orientation.date" => "date d'orientation",
        "orientation.organisme" => "organisme d'orientation",
        "orientation.referent" => "référent",
        "accompagnement" => "accompagnement",
        "situations" => "situations",
        "niveau_formation" => "niveau de formation",
        "faj" => "demandes FAJ",
        "ase" => "ASE",
        "obligation_formation" => "obligation de formation",
        other => {
            // A sub-field of a known group reads as its group.
            if let Some((head, _)) = other.split_once('.') {
                let l = field_label(head);
                if l != esc(head) {
                    return l;
                }
            }
            return esc(other);
        }
    };
    label.to_owned()
}

/// The fields' labels, once each, in order.
pub fn fields_fr(paths: &[String]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for p in paths {
        let l = field_label(p);
        if !l.is_empty() && !seen.contains(&l) {
            seen.push(l);
        }
    }
    seen.join(", ")
}

/// A receipt status in words, with its reason; and the CSS class it reads with.
pub fn status_fr(s: TransferStatus, reason: Option<&str>) -> (String, &'static str) {
    let reason = reason.map(|r| format!(" : {}", esc(r))).unwrap_or_default();
    match s {
        TransferStatus::Published => ("en attente de réponse".into(), "attente"),
        TransferStatus::Delivered => ("remis, en attente de traitement".into(), "attente"),
        TransferStatus::Applied => ("appliqué".into(), "applique"),
        TransferStatus::Rejected => (format!("refusé{reason}"), "refuse"),
        TransferStatus::DeadLettered => {
            (format!("non remis après plusieurs essais{reason}"), "echec")
        }
    }
}

/// What a sender can do about a transfer in this status.
pub fn what_to_do(s: TransferStatus) -> &'static str {
    match s {
        TransferStatus::Rejected => {
            "Corrigez la donnée dans votre logiciel : elle repartira à la prochaine nuit."
        }
        TransferStatus::DeadLettered => {
            "Le destinataire n'a pas pu être joint : un opérateur peut relancer l'envoi."
        }
        _ => "",
    }
}
