//! What the register says of this hub's security measures: what is true of the
//! running configuration, for `passerelle policy register`, `audit` and the DPO console.

/// The security measures true of this configuration and of this program, in French, for
/// the register (instead of the flows file's own list, which may claim more).
pub fn running_facts(config: &crate::config::HubConfig) -> Vec<String> {
    use crate::config::TransportKind;
    let mut out = vec![
        "Minimisation : chaque transmission est réduite aux champs que son flux autorise avant de quitter l'expéditeur ; sans flux autorisé, rien n'est transmis et le refus est journalisé.".to_owned(),
        "Chiffrement des données transmises : AES-256-GCM, une clé par message enveloppée par la clé du destinataire ; l'en-tête (flux, expéditeur, destinataire) est lié au chiffré.".to_owned(),
        "Clés dans un trousseau réservé au compte du hub (fichiers lisibles par lui seul), hors des fichiers de configuration, avec rotation ; limite connue : les clés y sont stockées en clair.".to_owned(),
    ];
    out.push(match config.transport.kind {
        TransportKind::Embedded => "Transport intégré (base SQLite sur la machine du hub) : pas de lien réseau entre le hub et sa file de messages.".to_owned(),
        TransportKind::Rabbitmq => match config.transport.rabbitmq.as_ref().map(|r| r.url.starts_with("amqps://")) {
            Some(true) => "Lien vers le courtier RabbitMQ chiffré par TLS (amqps), certificat du serveur vérifié.".to_owned(),
            _ => "Lien vers le courtier RabbitMQ non chiffré (amqp://) : à réserver à un réseau de confiance ; les messages restent chiffrés de bout en bout.".to_owned(),
        },
    });
    out.push(match &config.journal.url {
        None => "Journal d'audit SQLite dans le dossier de données du hub".to_owned(),
        Some(_) => "Journal d'audit PostgreSQL".to_owned(),
    } + " : ajout seul, chaîné par SHA-256, sans identité en clair (pseudonymes à clé) ; tête signée par la clé Ed25519 du hub à chaque ancrage et à chaque purge.");
    out.push("Liens avec les systèmes des partenaires : chiffrés selon l'adresse configurée pour chacun (https://, sftp).".to_owned());
    out
}
